"""Replay extraction filters over saved candidates, without a model call.

Reads a ``predictions-*.jsonl`` that ``evaluate --save-predictions`` wrote and re-scores it as
if only the accepted candidates passing a filter on *who extracted them* had been kept (the
component's overlap rule re-applied, ``spacy_el4ner.calibration.replay_counts``;
``python -m spacy_el4ner calibrate`` chooses such a filter by finder set). A replay cannot
ask a member that was not asked in the run, so it only narrows what the run accepted.

    python benchmarks/replay_filters.py results/wnut17-dev400-s11-adapted-first/predictions-ensemble.jsonl \
        --strong qwen2.5-coder-0.5b-instruct+adapters/wnut17-500-cllmfs
"""
import argparse
import json
from collections import Counter
from typing import Callable, Dict, Sequence

from spacy_el4ner.calibration import replay_counts  # the component's overlap rule, on character offsets


def score(rows: Sequence[dict], keep: Callable[[dict], bool]) -> Dict[str, float]:
    counts = replay_counts(rows, keep)  # the replay `calibrate` uses
    tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
    p = tp / max(tp + fp, 1)
    r_ = tp / max(tp + fn, 1)
    return {"P": 100 * p, "R": 100 * r_, "F1": 200 * p * r_ / max(p + r_, 1e-9), "predicted": tp + fp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("predictions")
    ap.add_argument("--strong", required=True, help="The member trusted most (as named in extracted_by)")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.predictions, encoding="utf8") if line.strip()]
    strong = args.strong
    rules: Dict[str, Callable[[dict], bool]] = {
        "as run": lambda c: True,
        "found by the strong member": lambda c: strong in c["extracted_by"],
        "found by >= 2 members": lambda c: len(c["extracted_by"]) >= 2,
        "strong member, or >= 2 members": lambda c: strong in c["extracted_by"] or len(c["extracted_by"]) >= 2,
    }
    for name, keep in rules.items():
        s = score(rows, keep)
        print(f"{name:34s} P {s['P']:5.1f} R {s['R']:5.1f} F1 {s['F1']:5.1f} ({s['predicted']} predicted)")
    right: Counter = Counter()
    wrong: Counter = Counter()
    for r in rows:
        gold = {(g[0], g[1], g[2]) for g in r["gold"]}
        for c in r["candidates"]:
            if c.get("accepted"):
                who = " + ".join(sorted(c["extracted_by"]))
                (right if (c["start"], c["end"], c["label"]) in gold else wrong)[who] += 1
    print("accepted candidates by who extracted them (right / wrong):")
    for who in sorted(set(right) | set(wrong), key=lambda w: -(right[w] + wrong[w])):
        print(f"  {right[who]:4d} / {wrong[who]:4d}  {who}")


if __name__ == "__main__":
    main()
