"""bf16 against fp32 weights on this machine's CPU, side by side in one run.

1. One forward pass over a few-shot prompt (prefill) and a 16-token greedy answer, per embedded
   member, each dtype in turn, repeated; medians.
2. The whole default pipeline (`evaluate`, default pair, no response cache) on the first N
   WNUT-17 test sentences in each dtype: time per sentence and F1.

Usage: python benchmarks/dtype_speed.py [--n 20] [--repeats 3] [--output benchmarks/results/dtype-speed-CPU.json]
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
from spacy_el4ner.models.hf import cpu_has_fast_bf16, fastest_dtype

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ("float32", "bfloat16")


def micro(name: str, repeats: int) -> dict:
    path = zoo.pull(name)
    tok = AutoTokenizer.from_pretrained(path)
    demo = "Text: Barack Obama visited Paris and met Emmanuel Macron at the Elysee.\n[\"Barack Obama\", \"Paris\", \"Emmanuel Macron\", \"Elysee\"]\n"
    ids = tok("List the entities.\n" + demo * 6 + "Text: Apple hired Tim Cook in Cupertino.\n", return_tensors="pt").input_ids
    models = {dt: AutoModelForCausalLM.from_pretrained(path, torch_dtype=getattr(torch, dt)).eval() for dt in DTYPES}
    times = {dt: {"prefill": [], "generate16": []} for dt in DTYPES}
    with torch.no_grad():
        for m in models.values():
            m(ids)  # warm-up
        for _ in range(repeats):
            for dt, m in models.items():
                t = time.perf_counter()
                m(ids)
                times[dt]["prefill"].append(time.perf_counter() - t)
                t = time.perf_counter()
                m.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=tok.eos_token_id)
                times[dt]["generate16"].append(time.perf_counter() - t)
    out = {"prompt_tokens": int(ids.shape[1])}
    for dt in DTYPES:
        out[dt] = {k: round(statistics.median(v), 3) for k, v in times[dt].items()}
    out["bf16_over_fp32"] = {k: round(out["bfloat16"][k] / out["float32"][k], 2) for k in ("prefill", "generate16")}
    return out


def e2e(n: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        subprocess.run([sys.executable, "-m", "spacy_el4ner", "store", "build", str(ROOT.parent / "shared/data/wnut17/train.conll"),
                        "--limit", "500", "-o", str(store)], check=True, cwd=ROOT, capture_output=True)
        for dt in DTYPES:
            res = Path(tmp) / dt
            subprocess.run([sys.executable, "-m", "spacy_el4ner", "evaluate", str(ROOT.parent / "shared/data/wnut17/test.conll"),
                            "--store", str(store), "--limit", str(n), "--variants", "none", "--dtype", dt,
                            "--cache", str(Path(tmp) / f"cache-{dt}"), "--output", str(res)], check=True, cwd=ROOT, capture_output=True)
            r = json.loads((res / "results.json").read_text())["results"]["ensemble"]
            out[dt] = {k: r[k] for k in ("p", "r", "f", "sec_per_sentence", "llm_calls_per_sentence")}
    out["bf16_over_fp32_sec"] = round(out["bfloat16"]["sec_per_sentence"] / out["float32"]["sec_per_sentence"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    cap = torch.backends.cpu.get_cpu_capability()
    output = args.output or ROOT / "benchmarks" / "results" / f"dtype-speed-{cap.lower()}.json"
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(), "cpu_capability": cap,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(), "fastest": fastest_dtype("cpu"), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "command": "python benchmarks/dtype_speed.py " + " ".join(sys.argv[1:]),
        "micro": {name: micro(name, args.repeats) for name in ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")},
    }
    if args.n:
        result["wnut17_test_first_n"] = {"n": args.n, **e2e(args.n)}
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201 (a script's report)


if __name__ == "__main__":
    main()
