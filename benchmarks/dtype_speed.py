"""Weight dtypes on this machine's CPU, side by side in one run (default: fp32 against bf16).

1. One forward pass over a few-shot prompt (prefill) and a 16-token greedy answer, per embedded
   member, each dtype in turn, repeated; medians. How far each dtype's next-token distributions
   are from the first dtype's over the prompt (KL divergence, argmax agreement).
2. The whole default pipeline (`evaluate`, default pair, no response cache) on the first N
   WNUT-17 sentences (test, or dev with --split dev) in each dtype: time per sentence, F1, and
   the sentences whose predicted entities equal the first dtype's.

Usage: python benchmarks/dtype_speed.py [--dtypes float32,bfloat16] [--n 20] [--split test] [--repeats 3]
       [--output benchmarks/results/speed/dtype-speed-CPU.json]
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from spacy_el4ner.models import zoo
from spacy_el4ner.models.hf import cpu_has_fast_bf16, fastest_dtype, quantize_int8

ROOT = Path(__file__).resolve().parent.parent


def load(path: str, dtype: str) -> torch.nn.Module:
    if dtype == "int8":
        return quantize_int8(AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval())
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=getattr(torch, dtype)).eval()


def micro(name: str, dtypes: list, repeats: int) -> dict:
    path = zoo.pull(name)
    tok = AutoTokenizer.from_pretrained(path)
    demo = "Text: Barack Obama visited Paris and met Emmanuel Macron at the Elysee.\n[\"Barack Obama\", \"Paris\", \"Emmanuel Macron\", \"Elysee\"]\n"
    ids = tok("List the entities.\n" + demo * 6 + "Text: Apple hired Tim Cook in Cupertino.\n", return_tensors="pt").input_ids
    models = {dt: load(path, dt) for dt in dtypes}
    times = {dt: {"prefill": [], "generate16": []} for dt in dtypes}
    out: dict = {"prompt_tokens": int(ids.shape[1])}
    with torch.no_grad():
        logprobs = {dt: m(ids).logits[0].float().log_softmax(-1) for dt, m in models.items()}  # also a warm-up
        ref = logprobs[dtypes[0]]
        for dt in dtypes[1:]:
            kl = (ref.exp() * (ref - logprobs[dt])).sum(-1)
            out[f"{dt}_vs_{dtypes[0]}"] = {
                "kl_mean": round(kl.mean().item(), 5), "kl_max": round(kl.max().item(), 4),
                "argmax_agreement": round((ref.argmax(-1) == logprobs[dt].argmax(-1)).float().mean().item(), 4),
            }
        for _ in range(repeats):
            for dt, m in models.items():
                t = time.perf_counter()
                m(ids, logits_to_keep=1)
                times[dt]["prefill"].append(time.perf_counter() - t)
                t = time.perf_counter()
                m.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=tok.eos_token_id)
                times[dt]["generate16"].append(time.perf_counter() - t)
    for dt in dtypes:
        out[dt] = {k: round(statistics.median(v), 3) for k, v in times[dt].items()}
    for dt in dtypes[1:]:
        out[f"{dt}_over_{dtypes[0]}"] = {k: round(out[dt][k] / out[dtypes[0]][k], 2) for k in ("prefill", "generate16")}
    return out


def e2e(n: int, dtypes: list, split: str) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        subprocess.run([sys.executable, "-m", "spacy_el4ner", "store", "build", str(ROOT.parent / "shared/data/wnut17/train.conll"),
                        "--limit", "500", "-o", str(store)], check=True, cwd=ROOT, capture_output=True)
        predicted = {}
        for dt in dtypes:
            res = Path(tmp) / dt
            subprocess.run([sys.executable, "-m", "spacy_el4ner", "evaluate", str(ROOT.parent / f"shared/data/wnut17/{split}.conll"),
                            "--store", str(store), "--limit", str(n), "--variants", "none", "--dtype", dt, "--save-predictions",
                            "--cache", str(Path(tmp) / f"cache-{dt}"), "--output", str(res)], check=True, cwd=ROOT, capture_output=True)
            r = json.loads((res / "results.json").read_text())["results"]["ensemble"]
            out[dt] = {k: r[k] for k in ("p", "r", "f", "sec_per_sentence", "llm_calls_per_sentence")}
            rows = (res / "predictions-ensemble.jsonl").read_text(encoding="utf8").splitlines()
            predicted[dt] = [json.loads(row)["predicted"] for row in rows]
    for dt in dtypes[1:]:
        out[f"{dt}_over_{dtypes[0]}_sec"] = round(out[dt]["sec_per_sentence"] / out[dtypes[0]]["sec_per_sentence"], 2)
        out[f"{dt}_same_entities_as_{dtypes[0]}"] = sum(a == b for a, b in zip(predicted[dt], predicted[dtypes[0]]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated; the first is the reference")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--split", default="test", choices=("test", "dev"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    dtypes = args.dtypes.split(",")
    cap = torch.backends.cpu.get_cpu_capability()
    suffix = "" if dtypes == ["float32", "bfloat16"] else "-" + "-".join(dtypes)
    output = args.output or ROOT / "benchmarks" / "results" / "speed" / f"dtype-speed-{cap.lower()}{suffix}.json"
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(), "cpu_capability": cap,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(), "fastest": fastest_dtype("cpu"), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "command": "python benchmarks/dtype_speed.py " + " ".join(sys.argv[1:]),
        "micro": {name: micro(name, dtypes, args.repeats) for name in ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")},
    }
    if args.n:
        result[f"wnut17_{args.split}_first_n"] = {"n": args.n, **e2e(args.n, dtypes, args.split)}
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201 (a script's report)


if __name__ == "__main__":
    main()
