"""Re-decide which typed candidates become entities, offline, from saved predictions.

`evaluate --save-predictions` keeps every candidate with its label score (the vote's mean
probability) and its validation P(yes). The component accepts a candidate when
``validation >= validation_threshold`` and ``label_score * validation >= min_confidence``, then
keeps non-overlapping ones greedily by confidence (align.select_entities). This script replays
that rule for a grid of the two thresholds, with no model call, and prints micro P/R/F1 per file.
Candidates that validation skipped (their label score was already below min_confidence of the
run) count as rejected, so only grids with min_confidence >= the run's value are exact.

Usage: python benchmarks/accept_sweep.py PRED.jsonl [PRED.jsonl ...] [--out results.json]
"""
import argparse
import json
from typing import Dict, List, Sequence, Tuple

MIN_CONF = [0.3, 0.35, 0.4, 0.45, 0.5]
VAL_T = [0.0, 0.45, 0.5, 0.55, 0.6]


def select(cands: Sequence[Tuple[int, int, str, float]]) -> List[Tuple[int, int, str]]:
    """Greedy non-overlapping choice: confidence, then length, then position (as the component)."""
    taken: List[Tuple[int, int]] = []
    out = []
    for s, e, label, _ in sorted(cands, key=lambda x: (-x[3], -(x[1] - x[0]), x[0])):
        if any(s < te and ts < e for ts, te in taken):
            continue
        taken.append((s, e))
        out.append((s, e, label))
    return out


def score(rows: List[dict], min_conf: float, val_t: float) -> Dict[str, float]:
    tp = n_pred = n_gold = 0
    for row in rows:
        gold = {(s, e, lab) for s, e, lab, _ in row["gold"]}
        chosen = []
        for c in row["candidates"]:
            if c.get("label") is None:
                continue
            v = c.get("validation")
            v = 1.0 if v is None else v  # skipped by validation: label score < the run's min_confidence
            conf = c["label_score"] * v
            if v >= val_t and conf >= min_conf:
                chosen.append((c["start"], c["end"], c["label"], conf))
        pred = set(select(chosen))
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
    header = "| min_confidence | validation_threshold | " + " | ".join(args.files) + " | mean F1 |"
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
