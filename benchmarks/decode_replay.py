"""Replay recorded generation prompts (benchmarks/dump_prompts.py) through ``HFModel.generate``
under decoding settings, side by side, and report seconds, forward passes and whether the answers
equal those of the first setting. No response cache.

Usage: python benchmarks/decode_replay.py PROMPTS.json [ROUNDS] [SETTING ...]
A setting is "ATTRIBUTE=INT,..." of HFModel, e.g. "draft_tokens=2" (default: draft_tokens 0 and 2).
"""
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from spacy_el4ner.models.hf import HFModel


def parse(setting: str) -> Dict[str, int]:
    return {k: int(v) for k, v in (kv.split("=") for kv in setting.split(","))}


def main() -> None:
    record = json.loads(Path(sys.argv[1]).read_text())
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    settings = sys.argv[3:] or ["draft_tokens=0", "draft_tokens=2"]
    models: Dict[str, HFModel] = {}
    for call in record["generate"]:
        models.setdefault(call["member"], HFModel(call["member"], batch_size=8))
    for m in models.values():
        m.generate(["Warm up."], max_new_tokens=4)
    times: Dict[str, Dict[str, List[float]]] = {s: {m: [] for m in models} for s in settings}
    passes: Dict[str, Dict[str, int]] = {s: {} for s in settings}
    answers: Dict[str, List[Any]] = {}
    for _ in range(rounds):
        for s in settings:  # interleaved: the machine's drift hits every setting alike
            got: List[Any] = []
            for name, m in models.items():
                for k, v in parse(s).items():
                    setattr(m, k, v)
                m._stats = {k: 0 for k in m._stats}
                t0 = time.perf_counter()
                for call in record["generate"]:
                    if call["member"] == name:
                        got.append(m.generate(call["prompts"], **call["kwargs"]))
                times[s][name].append(time.perf_counter() - t0)
                passes[s][name] = m._stats["forward_passes"]
                passes[s][name + " drafted"] = m._stats["drafted_tokens"]
            answers[s] = got
    base = answers[settings[0]]
    for s in settings:
        same = sum(a == b for ga, gb in zip(answers[s], base) for a, b in zip(ga, gb))
        total = sum(len(g) for g in base)
        med = {n: round(statistics.median(t), 2) for n, t in times[s].items()}
        print(f"{s}: seconds (median of {rounds}) {med} total {round(sum(med.values()), 2)}; passes {passes[s]}; "
              f"answers equal to the first setting's: {same}/{total}")
        for ga, gb in zip(answers[s], base):
            for a, b in zip(ga, gb):
                if a != b:
                    print(f"   differs: {a!r} vs {b!r}")


if __name__ == "__main__":
    main()
