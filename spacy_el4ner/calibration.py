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

:func:`calibrate_min_confidence` then chooses the acceptance threshold (``min_confidence``) the
same way, on the replay with the chosen sets. A candidate's confidence is its label score times
the verifier's P(yes), and how those probabilities spread depends on the verifier: a CLLMFS-adapted
verifier's P(yes) stays between about 0.3 and 0.6, so the default 0.3 accepts almost everything it
was asked about. Raising the threshold only drops candidates, so the replay is exact (no model
call is needed, and none is saved: the spans are still typed and validated).
"""
from collections import Counter
from itertools import combinations
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Sequence

from .align import non_overlapping
from .analysis import Counts, micro_f1, paired_bootstrap
from .errors import Errors

FinderSet = FrozenSet[str]


class NothingToCalibrate(ValueError):
    """The run accepted no candidate: there is no finder set (or threshold) to choose from."""


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
    """A ``replay_counts`` filter: keep the candidates found by exactly one of ``accepted``; none
    given: keep every candidate (the union, as ``accept_finder_sets = []`` in the component)."""
    chosen = set(accepted)
    if not chosen:
        return lambda c: True
    # spans that no member extracted (none today) are not the rule's business: keep them
    return lambda c: not c.get("extracted_by") or frozenset(c["extracted_by"]) in chosen


THRESHOLD_GRID = tuple(round(0.025 * i, 3) for i in range(41))


def calibrate_min_confidence(
    rows: Sequence[Mapping[str, Any]], keep: Callable[[Mapping[str, Any]], bool] = lambda c: True,
    grid: Sequence[float] = THRESHOLD_GRID, samples: int = 2000, seed: int = 0, max_p: float = 0.1,
) -> Dict[str, Any]:
    """Choose ``min_confidence`` on a run's saved predictions on labelled dev data.

    rows: Lines of ``predictions-*.jsonl``.
    keep: Candidates to consider (``keep_finder_sets`` of the chosen sets; default all).
    grid: Thresholds to try; the best dev F1 wins, ties go to the lower threshold.
    samples, seed: Paired bootstrap of the best threshold against the run's own (over sentences).
    max_p: Keep the best threshold only when it beats the run's own in at least 1 - max_p of the
        bootstrap samples (a dev sample of 100 sentences moves F1 by a few points: a threshold
        that wins by chance costs on test; 1.0 keeps any gain).
    RETURNS: ``min_confidence`` (the threshold, or None: keep the setting the run had, when no
        threshold above the run's own beats it or its gain is within noise), ``best_threshold``
        (the best even when not kept), ``thresholds`` ([threshold, F1] per grid value that
        changes anything, up to the first that keeps nothing), ``f1_before``, ``f1_after`` (with
        ``min_confidence``), ``f1_best``, ``bootstrap`` (best minus before), ``max_p``.
    """
    if not rows:
        raise ValueError(Errors.E601)
    if not 0.0 <= max_p <= 1.0:
        raise ValueError(Errors.E602.format(value=max_p))
    confidences = [float(c.get("confidence") or 0.0) for r in rows for c in r.get("candidates", []) if c.get("accepted") and keep(c)]
    before = replay_counts(rows, keep)
    f1_before = 100.0 * micro_f1(before)
    table: List[List[float]] = []
    best_t, best_f1 = None, f1_before
    for t in sorted(grid):
        if not any(c < t for c in confidences):
            continue  # the run kept all of these already: the same as its own threshold
        f1 = 100.0 * micro_f1(replay_counts(rows, lambda c, t=t: keep(c) and float(c.get("confidence") or 0.0) >= t))
        table.append([t, round(f1, 2)])
        if round(f1, 6) > round(best_f1, 6):
            best_t, best_f1 = t, f1
        if not any(c >= t for c in confidences):
            break  # nothing left: higher thresholds are the same
    best = before if best_t is None else replay_counts(
        rows, lambda c: keep(c) and float(c.get("confidence") or 0.0) >= best_t
    )
    boot = paired_bootstrap(best, before, samples=samples, seed=seed)
    kept = best_t is not None and boot["p_not_better"] <= max_p
    return {
        "min_confidence": best_t if kept else None,
        "best_threshold": best_t,
        "thresholds": table,
        "f1_before": round(f1_before, 2),
        "f1_after": round(100.0 * micro_f1(best if kept else before), 2),
        "f1_best": round(100.0 * micro_f1(best), 2),
        "bootstrap": boot,
        "max_p": max_p,
    }


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
        raise ValueError(Errors.E601)
    counts = finder_set_counts(rows)
    if not counts:
        raise NothingToCalibrate(Errors.E603)
    members = sorted(set().union(*counts))
    if len(members) > max_members:
        raise ValueError(Errors.E604.format(n=len(members), n_sets=2 ** len(members), max_members=max_members))
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
