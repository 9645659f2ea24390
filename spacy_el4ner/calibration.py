"""Which members' spans to trust: choose ``accept_finder_sets`` on labelled dev data.

With members of unequal strength, whether a span that only a weak member found is worth keeping
depends on the domain (on tweets the base Qwen's lone spans were 15% right, on political news
54%). A span found by one set of members adds to F1 when its precision is above about half the
F1 it joins, so the rule has to be measured, not fixed.

:func:`calibrate_finder_sets` reads the predictions of a run with the union (``evaluate
--save-predictions``, the paper's rule: every finder set accepted), counts the accepted
candidates right and wrong by the set of members that found them, orders the sets by
(smoothed) precision and keeps the prefix that gives the best micro F1 when the run is replayed
with only those sets (the component's overlap rule re-applied; no model call). The replay is
close to what the component does with ``accept_finder_sets``: left-out spans are dropped before
they are typed (no classification or validation call is spent on them), and typing and
validation of a span do not depend on the other spans. One difference: the component filters
the spans as extracted, while a saved candidate's finders are counted after the store's edge
rule has trimmed and merged spans ("My cat" from one member, trimmed to another member's "cat").
On WNUT-17 dev 400 that changed 1 sentence (replay 49.7, run 49.6).
"""
from collections import Counter
from itertools import combinations
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Sequence

from .align import non_overlapping
from .analysis import Counts, micro_f1, paired_bootstrap

FinderSet = FrozenSet[str]


def _gold(row: Mapping[str, Any]) -> set:
    return {(int(g[0]), int(g[1]), str(g[2])) for g in row["gold"]}


def replay_counts(rows: Sequence[Mapping[str, Any]], keep: Callable[[Mapping[str, Any]], bool]) -> List[Counts]:
    """Per sentence (tp, fp, fn) when only the accepted candidates that pass ``keep`` are kept.

    rows: Lines of a ``predictions-*.jsonl`` (text, gold, candidates with start, end, label,
        confidence, accepted, extracted_by).
    keep: Candidate dict -> whether to keep it.
    """
    out: List[Counts] = []
    for row in rows:
        gold = _gold(row)
        cands = [
            (int(c["start"]), int(c["end"]), str(c["label"]), float(c.get("confidence") or 0.0))
            for c in row.get("candidates", [])
            if c.get("accepted") and keep(c)
        ]
        pred = {(s, e, lab) for s, e, lab, _ in non_overlapping(cands)}
        out.append((len(pred & gold), len(pred - gold), len(gold - pred)))
    return out


def finder_set_counts(rows: Sequence[Mapping[str, Any]]) -> Dict[FinderSet, Counter]:
    """Accepted candidates right / wrong (exact span and label) by the set of members that found them."""
    out: Dict[FinderSet, Counter] = {}
    for row in rows:
        gold = _gold(row)
        for c in row.get("candidates", []):
            if not c.get("accepted") or not c.get("extracted_by"):
                continue
            key = frozenset(c["extracted_by"])
            ok = (int(c["start"]), int(c["end"]), str(c["label"])) in gold
            out.setdefault(key, Counter())["right" if ok else "wrong"] += 1
    return out


def rank_finder_sets(counts: Mapping[FinderSet, Counter]) -> List[FinderSet]:
    """Finder sets by Laplace-smoothed precision, best first (then larger sets, then by name): a
    set seen twice and right twice does not outrank one right 90 of 100 times."""
    return sorted(counts, key=lambda s: (-(counts[s]["right"] + 1) / (sum(counts[s].values()) + 2), -len(s), sorted(s)))


def keep_finder_sets(accepted: Sequence[FinderSet]) -> Callable[[Mapping[str, Any]], bool]:
    """A ``replay_counts`` filter: keep the candidates found by exactly one of ``accepted``."""
    chosen = set(accepted)
    # spans that no member extracted (none today) are not the rule's business: keep them
    return lambda c: not c.get("extracted_by") or frozenset(c["extracted_by"]) in chosen


def calibrate_finder_sets(
    rows: Sequence[Mapping[str, Any]], samples: int = 2000, seed: int = 0, max_members: int = 8
) -> Dict[str, Any]:
    """Choose the finder sets to accept from a union run's saved predictions on labelled data.

    rows: Lines of ``predictions-*.jsonl`` from a run that accepted every finder set.
    samples, seed: Paired bootstrap of the chosen rule against the union (over sentences).
    max_members: Refuse runs with more members (2**n finder sets).
    RETURNS: ``accept_finder_sets`` (sorted lists of member names: the chosen sets, plus the
        unseen supersets of a chosen set, since agreement of more members is not less
        trustworthy; empty when every set seen is chosen: the union), ``finder_sets`` (per set:
        members, right, wrong, precision, the F1 of the prefix ending with it, whether chosen),
        ``members``, ``f1_union``, ``f1_calibrated``, ``bootstrap`` (calibrated minus union),
        ``sentences``.
    """
    if not rows:
        raise ValueError("calibrate: no sentences; give the predictions of a run on labelled dev data")
    counts = finder_set_counts(rows)
    if not counts:
        raise ValueError("calibrate: no accepted candidate in the run; nothing to calibrate (was it run with --save-predictions?)")
    members = sorted(set().union(*counts))
    if len(members) > max_members:
        raise ValueError(f"calibrate: {len(members)} members give {2 ** len(members)} finder sets; at most {max_members} members")
    ranked = rank_finder_sets(counts)
    prefix_f1: List[float] = []
    for i in range(len(ranked)):
        prefix_f1.append(100.0 * micro_f1(replay_counts(rows, keep_finder_sets(ranked[: i + 1]))))
    best = max(range(len(ranked)), key=lambda i: (round(prefix_f1[i], 6), -i))  # ties: the shorter prefix
    chosen = ranked[: best + 1]
    unseen = [
        frozenset(c) for n in range(1, len(members) + 1) for c in combinations(members, n)
        if frozenset(c) not in counts and any(frozenset(c) >= s for s in chosen)
    ]
    union = replay_counts(rows, lambda c: True)
    calibrated = replay_counts(rows, keep_finder_sets(chosen))
    return {
        # every seen set chosen: the union, which also accepts sets the dev run never saw
        "accept_finder_sets": [] if len(chosen) == len(ranked) else [sorted(s) for s in chosen + unseen],
        "finder_sets": [
            {
                "members": sorted(s), "right": counts[s]["right"], "wrong": counts[s]["wrong"],
                "precision": round(100.0 * counts[s]["right"] / max(1, sum(counts[s].values())), 1),
                "prefix_f1": round(prefix_f1[i], 2), "accepted": i <= best,
            }
            for i, s in enumerate(ranked)
        ],
        "members": members,
        "f1_union": round(100.0 * micro_f1(union), 2),
        "f1_calibrated": round(100.0 * micro_f1(calibrated), 2),
        "bootstrap": paired_bootstrap(calibrated, union, samples=samples, seed=seed),
        "sentences": len(rows),
    }
