"""How many prompt tokens would llama.cpp save by keeping several prompt prefixes instead of one?

The llama.cpp engine keeps one prefix (sequence 0: the common start of the last group of prompts)
and reuses it as far as the next group's matches. This runs `evaluate` on llama.cpp once, records
every prefix the engine is asked to hold, and replays them through a cache of K prefixes
(least recently used goes first; a prefix that extends a held one replaces it): the prefix tokens
computed for K = 1 (what the engine does) and K = 2, 4, 8.

Usage: python benchmarks/prefix_slots.py DATA --store DIR [--limit 16] [--members a,b]
       [--output benchmarks/results/speed/prefix-slots-NAME.json]
"""
import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from spacy_el4ner.models import llama_engine
from spacy_el4ner.models.base import common_prefix


def replay(prefixes: List[List[int]], slots: int) -> int:
    """RETURNS (int): The prefix tokens computed with ``slots`` prefixes kept."""
    held: List[List[int]] = []
    computed = 0
    for p in prefixes:
        computed += len(p) - max((common_prefix(h, p) for h in held), default=0)
        held = [h for h in held if common_prefix(h, p) < len(h)] + [p]
        held = held[-slots:]
    return computed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--members", default="qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()

    trace: List[Tuple[str, List[int]]] = []
    keep = llama_engine.Engine.keep_prefix

    def traced(self: llama_engine.Engine, prefix: List[int]) -> int:
        trace.append((self.path.name, list(prefix)))
        return keep(self, prefix)

    llama_engine.Engine.keep_prefix = traced  # type: ignore[method-assign]
    from spacy_el4ner.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["evaluate", str(args.data), "--store", str(args.store), "--limit", str(args.limit), "--engine", "llama.cpp",
                "--members", args.members, "--variants", "none", "--cache", f"{tmp}/cache", "--output", f"{tmp}/run"]
        try:
            app(argv)
        except SystemExit as err:
            if err.code:
                raise
        result = json.loads(Path(f"{tmp}/run/results.json").read_text())["results"]["ensemble"]

    by_model: Dict[str, List[List[int]]] = defaultdict(list)
    for name, prefix in trace:
        by_model[name].append(prefix)
    n = result["n_sentences"]
    report = {
        "command": " ".join(["prefix_slots.py"] + sys.argv[1:]), "n": n, "members": args.members,
        "prompt_tokens_per_sentence": result["prompt_tokens_per_sentence"],
        "prefix_tokens_computed_per_sentence": {
            name: {f"{k} kept": round(replay(ps, k) / n, 1) for k in (1, 2, 4, 8)} for name, ps in by_model.items()
        },
    }
    print(json.dumps(report, indent=1))
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
