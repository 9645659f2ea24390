"""Throughput of the model backend (HFModel) against batch size, replaying the prompts that the
default ensemble really sends (recorded by benchmarks/dump_prompts.py).

Made for a lent GPU machine that has torch but neither spaCy nor our weights: with
``--random-init`` each member is rebuilt from its own config.json and tokenizer with random
weights (the same architecture, so the same arithmetic per token). Random weights rarely emit a
stop string, so every answer runs to ``max_new_tokens`` (64): an upper bound on the real
decoding work, whose answers stop after ~10-20 tokens. Scores (classification, validation) do
not depend on the weights' values at all.

Usage:
  python benchmarks/gpu_throughput.py PROMPTS.json MODEL_DIR[,MODEL_DIR2] OUT.json \
      [--random-init] [--device cuda] [--batch-sizes 1,4,8,16,32,64,128]
MODEL_DIR's folder name must be the member name in PROMPTS.json.
"""
import argparse
import importlib.util
import json
import platform
import shutil
import sys
import time
import types
from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parent.parent


def import_hfmodel() -> Any:
    """spacy_el4ner.models.hf, also where spaCy is not installed (its package __init__ imports
    spaCy; the models subpackage does not)."""
    try:
        from spacy_el4ner.models.hf import HFModel

        return HFModel
    except ImportError:
        pkg = types.ModuleType("spacy_el4ner")
        pkg.__path__ = [str(ROOT / "spacy_el4ner")]  # type: ignore[attr-defined]
        sys.modules["spacy_el4ner"] = pkg
        spec = importlib.util.find_spec("spacy_el4ner.models.hf")
        assert spec is not None
        from spacy_el4ner.models.hf import HFModel

        return HFModel


def random_copy(src: Path, dst: Path, device: str) -> Path:
    """A model folder with src's config and tokenizer and random bf16 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".gguf", ".bin")):
            shutil.copy(f, dst / f.name)
    cfg = AutoConfig.from_pretrained(src)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.save_pretrained(dst)
    return dst


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("prompts", type=Path)
    ap.add_argument("models")
    ap.add_argument("out", type=Path)
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-sizes", default="1,4,8,16,32,64,128")
    ap.add_argument("--small-batch-prompts", type=int, default=16, help="prompts for batch sizes below 8")
    ap.add_argument(
        "--score-modes",
        default="off,naive,on:8,on:32,on:128",
        help="off: one prompt at a time, shared prefix; naive: no sharing (first 32 prompts); on:B: padded batches of B rows; "
        "packed: the prompts sharing a prefix in one pass under a block mask (the CPU default)",
    )
    ap.add_argument("--no-stop-probe", type=int, default=0, help="also generate N prompts at batch 1 without stop strings")
    args = ap.parse_args()

    import torch
    import transformers

    HFModel = import_hfmodel()
    record = json.loads(args.prompts.read_text())
    info: Dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu",
        "random_init": args.random_init,
        "prompts_file": str(args.prompts),
        "members": {},
    }
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for folder in args.models.split(","):
        src = Path(folder)
        name = src.name
        path = random_copy(src, Path("/tmp/el4ner-random") / name, args.device) if args.random_init else src
        t0 = time.perf_counter()
        model = HFModel(str(path), device=args.device, batch_size=1)
        model.load()
        res: Dict[str, Any] = {"load_seconds": round(time.perf_counter() - t0, 2), "generate": [], "score": []}
        info["members"][name] = res
        gens = [c for c in record["generate"] if c["member"] == name]
        prompts = [p for c in gens for p in c["prompts"]]
        kwargs = dict(gens[0]["kwargs"]) if gens else {}
        if prompts:
            model.batch_size = 8
            model.generate(prompts[:8], **kwargs)  # warm-up (kernels, allocator)
        for b in sizes:
            n = args.small_batch_prompts
            todo = prompts if b >= 8 else prompts[:: max(1, len(prompts) // n)][:n]  # both prompt kinds
            model.batch_size = b
            before = model.stats
            sync(args.device)
            t = time.perf_counter()
            model.generate(todo, **kwargs)
            sync(args.device)
            dt = time.perf_counter() - t
            after = model.stats
            gen_tokens = after["generated_tokens"] - before["generated_tokens"]
            row = {
                "batch_size": b,
                "prompts": len(todo),
                "seconds": round(dt, 3),
                "prompts_per_s": round(len(todo) / dt, 2),
                "generated_tokens_per_s": round(gen_tokens / dt, 1),
                "generated_tokens_per_prompt": round(gen_tokens / max(1, len(todo)), 1),
                "prompt_tokens_per_prompt": round((after["prompt_tokens"] - before["prompt_tokens"]) / max(1, len(todo)), 1),
            }
            res["generate"].append(row)
            print(name, "generate", row, flush=True)
            args.out.write_text(json.dumps(info, indent=1))
        if prompts and args.no_stop_probe:
            model.batch_size = 1
            todo = prompts[:: max(1, len(prompts) // args.no_stop_probe)][: args.no_stop_probe]
            for stop in (kwargs.get("stop", ()), ()):
                before = model.stats
                sync(args.device)
                t = time.perf_counter()
                model.generate(todo, **dict(kwargs, stop=stop))
                sync(args.device)
                dt = time.perf_counter() - t
                steps = model.stats["forward_passes"] - before["forward_passes"]
                row = {"batch_size": 1, "stop_strings": list(stop), "prompts": len(todo), "seconds": round(dt, 3),
                       "ms_per_decoding_step": round(1000 * dt / max(1, steps), 1)}
                res.setdefault("stop_probe", []).append(row)
                print(name, "stop probe", row, flush=True)
        for call in (c for c in record["score"] if c["member"] == name):
            for mode in args.score_modes.split(","):
                model.share_prefix = mode != "naive"
                model.score_batching = "on" if mode.startswith("on") else ("packed" if mode == "packed" else "off")
                model.batch_size = int(mode.split(":")[1]) if ":" in mode else 1
                model._prefixes.clear()  # no key/value cache kept from an earlier mode's run
                model._prefix_total = 0
                todo_p = call["prompts"] if mode != "naive" else call["prompts"][:32]
                todo_c = call["continuations"][: len(todo_p)]
                before = model.stats
                sync(args.device)
                t = time.perf_counter()
                model.score(todo_p, todo_c)
                sync(args.device)
                dt = time.perf_counter() - t
                row = {
                    "continuations": todo_c[0],
                    "mode": mode,
                    "prompts": len(todo_p),
                    "seconds": round(dt, 3),
                    "prompts_per_s": round(len(todo_p) / dt, 2),
                    "forward_passes": model.stats["forward_passes"] - before["forward_passes"],
                }
                res["score"].append(row)
                print(name, "score", row, flush=True)
                args.out.write_text(json.dumps(info, indent=1))
        model.share_prefix, model.score_batching = True, "auto"
    args.out.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
