"""Cross-validate calibration rules on dev data only (no model call, no test data).

For each saved dev union run: split the sentences in two at random, choose the finder sets on
one half, score them on the other, and repeat. Rules: ``union`` (accept every set),
``prefix`` (what ``calibrate`` does: the best-F1 prefix of sets by precision) and ``evidence``
(walk the same order, accept a set only if adding it raises F1 in at least 75% of bootstrap
resamples of the calibration half).

    python benchmarks/calibration_cv.py benchmarks/runs/wnut17-dev-adapter-views/predictions-ensemble.jsonl ...
"""
import argparse
import json
import random
import statistics
from typing import Dict, List, Sequence

from spacy_el4ner.analysis import micro_f1, paired_bootstrap
from spacy_el4ner.calibration import calibrate_finder_sets, finder_set_counts, keep_finder_sets, rank_finder_sets, replay_counts


def evidence_sets(rows: Sequence[dict], samples: int = 200, need: float = 0.75) -> List[frozenset]:
    ranked = rank_finder_sets(finder_set_counts(rows))  # calibrate's order
    chosen = [ranked[0]]
    current = replay_counts(rows, keep_finder_sets(chosen))
    for s in ranked[1:]:
        trial = replay_counts(rows, keep_finder_sets(chosen + [s]))
        if 1.0 - paired_bootstrap(trial, current, samples=samples, seed=0)["p_not_better"] >= need:
            chosen, current = chosen + [s], trial
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("predictions", nargs="+")
    ap.add_argument("--splits", type=int, default=20)
    args = ap.parse_args()
    for path in args.predictions:
        rows = [json.loads(line) for line in open(path, encoding="utf8") if line.strip()]
        scores: Dict[str, List[float]] = {"union": [], "prefix": [], "evidence": []}
        for split in range(args.splits):
            idx = list(range(len(rows)))
            random.Random(split).shuffle(idx)
            cal, held = [rows[i] for i in idx[: len(idx) // 2]], [rows[i] for i in idx[len(idx) // 2 :]]
            prefix = calibrate_finder_sets(cal, samples=1)["accept_finder_sets"]
            prefix_sets = [frozenset(s) for s in prefix]
            keep_prefix = keep_finder_sets(prefix_sets)
            scores["union"].append(100 * micro_f1(replay_counts(held, lambda c: True)))
            scores["prefix"].append(100 * micro_f1(replay_counts(held, keep_prefix)))
            scores["evidence"].append(100 * micro_f1(replay_counts(held, keep_finder_sets(evidence_sets(cal)))))
        base = scores["union"]
        line = ", ".join(
            f"{k} {statistics.mean(v):.1f} (vs union {statistics.mean(a - b for a, b in zip(v, base)):+.1f}, "
            f"better in {sum(a > b for a, b in zip(v, base))}/{len(v)})"
            for k, v in scores.items()
        )
        print(f"{path.split('/')[-2]}: {line}")


if __name__ == "__main__":
    main()
