"""Raw engine speed for one model: prefill tokens per second (a 512-token prompt) and milliseconds
per generated token (single-token steps on that cache), transformers against llama.cpp, in one
process, one after the other; best of 2 prefills.

Usage: python benchmarks/prefill_speed.py [--model qwen2.5-coder-0.5b-instruct]
       [--dtypes bfloat16,float32] [--gguf FILE ...]   (extra .gguf files, e.g. requantised copies)
"""
import argparse
import os
import time
from pathlib import Path

TEXT = "The quick brown fox jumps over the lazy dog. " * 60


def transformers_speed(model: str, dtype: str) -> tuple:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spacy_el4ner.models import zoo

    path = zoo.ensure(model)
    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, torch_dtype=getattr(torch, dtype)).eval()
    ids = tok(TEXT, return_tensors="pt").input_ids[:, :512]
    with torch.no_grad():
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            out = lm(ids, use_cache=True, logits_to_keep=1)
            best = min(best, time.perf_counter() - t)
        cache, step = out.past_key_values, ids[:, :1]
        t = time.perf_counter()
        for _ in range(20):
            cache = lm(step, past_key_values=cache, use_cache=True).past_key_values
    return ids.shape[1] / best, (time.perf_counter() - t) / 20 * 1000


def llamacpp_speed(gguf: Path) -> tuple:
    from spacy_el4ner.models.llama_engine import Engine, default_threads

    engine = Engine(gguf, 4096, 512, default_threads(), 2)
    ids = engine.tokenize(TEXT, special=False)[:512]
    best = float("inf")
    for _ in range(2):
        engine.drop(0)
        t = time.perf_counter()
        engine.decode([(tok, i, 0, i == len(ids) - 1) for i, tok in enumerate(ids)])
        best = min(best, time.perf_counter() - t)
    t = time.perf_counter()
    for k in range(20):
        engine.decode([(ids[k], len(ids) + k, 0, True)])
    return len(ids) / best, (time.perf_counter() - t) / 20 * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--gguf", nargs="*", default=[])
    args = ap.parse_args()
    from spacy_el4ner.models import zoo

    print(f"{args.model}, {os.cpu_count()} CPUs")
    for dtype in [d for d in args.dtypes.split(",") if d]:
        tps, ms = transformers_speed(args.model, dtype)
        print(f"transformers {dtype}: prefill {tps:.0f} tokens/s, {ms:.1f} ms per generated token")
    for gguf in [zoo.gguf_path(args.model)] + [Path(g) for g in args.gguf]:
        tps, ms = llamacpp_speed(gguf)
        print(f"llama.cpp {gguf.name}: prefill {tps:.0f} tokens/s, {ms:.1f} ms per generated token")


if __name__ == "__main__":
    main()
