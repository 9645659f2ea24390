"""Re-decide which typed candidates become entities, offline, from saved predictions.

`evaluate --save-predictions` keeps every candidate with its label score (the vote's mean
probability) and its validation P(yes). This script replays the component's rule
(``ensemble.acceptance``, then ``align.non_overlapping`` on character offsets) for a grid of
the two thresholds, with no model call, and prints micro P/R/F1 per file.
Candidates that validation skipped (their label score was already below min_confidence of the
run) count as rejected, so only grids with min_confidence >= the run's value are exact.

Usage: python benchmarks/accept_sweep.py PRED.jsonl [PRED.jsonl ...] [--out results.json]
"""
import argparse
import json
from typing import Dict, List

from spacy_el4ner.align import non_overlapping
from spacy_el4ner.ensemble import acceptance

MIN_CONF = [0.3, 0.35, 0.4, 0.45, 0.5]
VAL_T = [0.0, 0.45, 0.5, 0.55, 0.6]


def score(rows: List[dict], min_conf: float, val_t: float) -> Dict[str, float]:
    tp = n_pred = n_gold = 0
    for row in rows:
        gold = {(s, e, lab) for s, e, lab, _ in row["gold"]}
        chosen = []
        for c in row["candidates"]:
            # the component's rule (a candidate skipped by validation has validation None and a
            # label score below the run's min_confidence)
            conf, accepted = acceptance(c.get("label"), c["label_score"], c.get("validation"), val_t, min_conf, c.get("entity_score"))
            if accepted:
                chosen.append((c["start"], c["end"], c["label"], conf))
        pred = {(s, e, lab) for s, e, lab, _ in non_overlapping(chosen)}
        tp += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(100 * p, 1), "r": round(100 * r, 1), "f": round(100 * f, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for path in args.files:
        rows = [json.loads(line) for line in open(path, encoding="utf8")]
        results[path] = {f"min_conf={c} val_t={t}": score(rows, c, t) for c in MIN_CONF for t in VAL_T}
    header = "| accept.min_confidence | accept.validation_threshold | " + " | ".join(args.files) + " | mean F1 |"
    print(header)
    print("|---" * (len(args.files) + 3) + "|")
    for c in MIN_CONF:
        for t in VAL_T:
            key = f"min_conf={c} val_t={t}"
            fs = [results[p][key]["f"] for p in args.files]
            print(f"| {c} | {t} | " + " | ".join(f"{f:.1f}" for f in fs) + f" | {sum(fs) / len(fs):.1f} |")
    if args.out:
        with open(args.out, "w", encoding="utf8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
