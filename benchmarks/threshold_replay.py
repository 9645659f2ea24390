"""Session 17: an acceptance threshold (``min_confidence``) chosen on dev, applied to test, for the
ensembles of sessions 12-16 *and* for their single members (each with its own dev-chosen
threshold), so that the margin of the ensemble over its best member stays a fair comparison.

No model call: the threshold is chosen with ``calibrate`` (``calibrate_min_confidence``) on the
saved dev predictions and applied to the saved test predictions by replay. A higher threshold only
drops candidates, so the replay is what the component gives with ``--set min_confidence=T`` (one
run checks it: ``run_full.sh threshold-check``).

    python benchmarks/threshold_replay.py   # -> benchmarks/results/threshold-s17.{json,md}

Needs the git-ignored full-split test predictions of sessions 12-16 (kept on the machine that ran
them) and the dev runs with the members alone (``run_full.sh threshold-dev-alone
threshold-test-alone``).
"""
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacy_el4ner.analysis import micro_f1, paired_bootstrap  # noqa: E402
from spacy_el4ner.calibration import (  # noqa: E402
    calibrate_finder_sets, calibrate_min_confidence, keep_finder_sets, replay_counts,
)

R = Path(__file__).resolve().parent / "results"
NA = "qwen2.5-coder-0.5b-instruct_adapters_ncbi-500-cllmfs"
NB = "qwen2.5-coder-0.5b-instruct_adapters_ncbi-500b-cllmfs"
WA = "qwen2.5-coder-0.5b-instruct_adapters_wnut17-500-cllmfs"
WB = "qwen2.5-coder-0.5b-instruct_adapters_wnut17-500b-cllmfs"
PA = "qwen2.5-coder-0.5b-instruct_adapters_politics-cllmfs"
Q = "qwen2.5-coder-0.5b-instruct"

# name, dev run, test run, test sentences (0: all), members: (slug, dev run with it alone, test run with it alone)
CONFIGS: List[Tuple[str, str, str, int, List[Tuple[str, str, str]]]] = [
    ("NCBI adapter views + B (s16)", "ncbi-dev100-s16-adapter-views-b", "ncbi-test200-s16-adapter-views-b-calibrated", 200,
     [(NA, "ncbi-dev100-s16-adapter-views-b", "ncbi-test200-s16-adapter-views-b-calibrated"),
      (NB, "ncbi-dev100-s16-adapter-views-b", "ncbi-test200-s16-adapter-views-b-calibrated")]),
    ("NCBI adapter views (s14)", "ncbi-dev100-s14-adapter-views", "ncbi-test200-s14-adapter-views-calibrated", 200,
     [(NA, "ncbi-dev100-s14-adapter-views", "ncbi-test200-s14-adapter-views-calibrated")]),
    ("NCBI adapter views, full test (s17)", "ncbi-dev100-s14-adapter-views", "ncbi-test0-s14-adapter-views-calibrated", 0,
     [(NA, "ncbi-dev100-s14-adapter-views", "ncbi-test0-s14-adapter-views-calibrated")]),
    ("NCBI base views (s14)", "ncbi-dev100-s14-views", "ncbi-test200-s14-views-calibrated", 200,
     [(Q, "ncbi-dev100-s14-views", "ncbi-test200-s14-views-calibrated")]),
    ("politics adapter views (s15-16)", "politics-dev100-s15-adapter-views", "politics-test0-s15-adapter-views-calibrated", 0,
     [(PA, "politics-dev100-s15-adapter-views", "politics-test0-s15-adapter-views-calibrated")]),
    ("politics base views (s13)", "politics-dev100-s13-views", "politics-test200-s13-views-calibrated", 200,
     [(Q, "politics-dev100-s13-views", "politics-test-full-s12-pair-calibrated")]),
    ("politics default pair (s12)", "politics-dev100-s12-pair", "politics-test-full-s12-pair-calibrated", 0,
     [(Q, "politics-dev100-s12-pair", "politics-test-full-s12-pair-calibrated")]),
    ("WNUT-17 adapter views + B (s15)", "wnut17-dev400-s15-adapter-views-b", "wnut17-test0-s15-adapter-views-b-calibrated", 0,
     [(WA, "wnut17-dev400-s15-adapter-views-b", "wnut17-test0-s15-adapter-views-b-calibrated"),
      (WB, "wnut17-dev400-s15-adapter-views-b", "wnut17-test0-s15-adapter-views-b-calibrated")]),
    ("WNUT-17 adapter views (s14)", "wnut17-dev400-s14-adapter-views", "wnut17-test0-s14-adapter-views-calibrated", 0,
     [(WA, "wnut17-dev400-s14-adapter-views", "wnut17-test0-s14-adapter-views-calibrated")]),
    ("WNUT-17 base views (s13)", "wnut17-dev400-s13-views", "wnut17-test0-s13-views-calibrated", 0,
     [(Q, "wnut17-dev400-s13-views", "wnut17-test-full-s12-pair-calibrated")]),
    ("WNUT-17 default pair (s12)", "wnut17-dev400-s12-pair", "wnut17-test-full-s12-pair-calibrated", 0,
     [(Q, "wnut17-dev400-s12-pair", "wnut17-test-full-s12-pair-calibrated")]),
]


def load(run: str, variant: str = "ensemble", limit: int = 0) -> Optional[List[Dict[str, Any]]]:
    path = R / run / f"predictions-{variant if variant == 'ensemble' else 'alone_' + variant}.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.open(encoding="utf8")]
    return rows[:limit] if limit else rows


def with_threshold(rows: Sequence[Dict[str, Any]], t: Optional[float]) -> list:
    return replay_counts(rows, lambda c: t is None or float(c.get("confidence") or 0.0) >= t)


RULES = (("kept if dev p <= 0.1 (calibrate's default)", 0.1), ("best on dev, any gain", 1.0))


def main() -> None:
    out: List[Dict[str, Any]] = []
    lines = ["# Dev-chosen acceptance threshold, replayed on test (session 17)", "",
             "Each run's `min_confidence` chosen on its own dev predictions (ensembles after their finder sets), "
             "applied to the saved test predictions. Margin: ensemble minus the best single member, "
             "both with and both without their thresholds (paired bootstrap, 2,000 resamples)."]
    for rule, max_p in RULES:
        lines += ["", f"## Rule: {rule}", "",
                  "| config | test sents | run | dev F1 -> best T | best T (dev p) | T used | test F1 | test F1 with T | test gain (95%) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, dev_run, test_run, limit, members in CONFIGS:
            rec = one_config(name, dev_run, test_run, limit, members, max_p, lines)
            if rec is not None:
                out.append({"rule": rule, "max_p": max_p, **rec})
    (R / "threshold-s17.json").write_text(json.dumps(out, indent=1))
    (R / "threshold-s17.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def one_config(name: str, dev_run: str, test_run: str, limit: int, members: List[Tuple[str, str, str]], max_p: float,
               lines: List[str]) -> Optional[Dict[str, Any]]:
    dev, test = load(dev_run), load(test_run, limit=limit)
    if dev is None or test is None:
        print(f"skip {name}: predictions missing", file=sys.stderr)
        return None
    cal = calibrate_finder_sets(dev, samples=10)
    thr = calibrate_min_confidence(dev, keep_finder_sets([frozenset(s) for s in cal["accept_finder_sets"]]), max_p=max_p)
    runs = {"ensemble": (thr, test)}
    for slug, mdev_run, mtest_run in members:
        mdev, mtest = load(mdev_run, slug), load(mtest_run, slug, limit=limit)
        if mdev is None or mtest is None:
            print(f"{name}: {slug} alone missing on dev or test", file=sys.stderr)
            continue
        runs[slug] = (calibrate_min_confidence(mdev, max_p=max_p), mtest)
    rec: Dict[str, Any] = {"config": name, "dev": dev_run, "test": test_run, "test_sentences": len(test), "runs": {}}
    counts = {}
    for run, (t, rows) in runs.items():
        before, after = with_threshold(rows, None), with_threshold(rows, t["min_confidence"])
        counts[run] = (before, after)
        gain = paired_bootstrap(after, before, samples=2000, seed=0)
        rec["runs"][run] = {"min_confidence": t["min_confidence"], "best_threshold": t["best_threshold"],
                            "dev_p_not_better": t["bootstrap"]["p_not_better"], "dev_f1": t["f1_before"], "dev_f1_best": t["f1_best"],
                            "test_f1": round(100 * micro_f1(before), 2), "test_f1_with": round(100 * micro_f1(after), 2),
                            "test_gain": gain}
        best_t = "-" if t["best_threshold"] is None else f"{t['best_threshold']} ({t['bootstrap']['p_not_better']:.2f})"
        lines.append(f"| {name} | {len(rows)} | {run.replace('qwen2.5-coder-0.5b-instruct', 'Q').replace('_adapters_', '+')} | "
                     f"{t['f1_before']:.1f} -> {t['f1_best']:.1f} | {best_t} | {t['min_confidence'] or '-'} | {100 * micro_f1(before):.1f} | "
                     f"{100 * micro_f1(after):.1f} | {gain['diff']:+.1f} ({gain['ci_low']:+.1f} to {gain['ci_high']:+.1f}) |")
    alone = [r for r in counts if r != "ensemble"]
    if alone:
        for when, i in (("without", 0), ("with", 1)):
            best = max(alone, key=lambda r: micro_f1(counts[r][i]))
            m = paired_bootstrap(counts["ensemble"][i], counts[best][i], samples=2000, seed=0)
            rec[f"margin_{when}_thresholds"] = {"best_member": best, **m}
        a, b = rec["margin_without_thresholds"], rec["margin_with_thresholds"]
        lines.append(f"| {name} | | **margin over the best member** | | | | {a['diff']:+.1f} ({a['ci_low']:+.1f} to {a['ci_high']:+.1f}) | "
                     f"{b['diff']:+.1f} ({b['ci_low']:+.1f} to {b['ci_high']:+.1f}) | |")
    return rec


if __name__ == "__main__":
    main()
