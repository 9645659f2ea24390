"""Error analysis by stage: where the gold entities are lost and where the false positives come from.

The evaluation CLI calls :func:`stage_breakdown` on every run. It reads what the component keeps
in ``doc.spans[spans_key]`` (every candidate, who extracted it, its label, whether it was
accepted), so it needs no extra model call. Spans match by character offsets; predicted and
reference docs must have the same text.
"""
import random
from collections import Counter
from typing import Any, Dict, Iterable, Sequence, Tuple

from spacy.training import Example

from .errors import Errors

Key = Tuple[int, int]


def _pct(num: int, den: int) -> float:
    return round(100.0 * num / den, 1) if den else 0.0


def stage_breakdown(examples: Iterable[Example], spans_key: str = "el4ner") -> Dict[str, Any]:
    """Count, over gold entities, how many each stage keeps, and sort false positives by cause.

    examples (Iterable[Example]): Predicted docs (run through the el4ner component) with references.
    spans_key (str): The component's ``spans_key``.
    RETURNS (Dict[str, Any]): ``gold``: gold entities; ``extracted``: found with exact boundaries
        by the union of the members, ``extracted_by``: per member, ``only_by``: found by that
        member alone; of those, ``untyped`` (the vote chose no label, e.g. "none"), ``mistyped``
        (another label) and ``typed`` (the gold label); ``accepted``: of
        those, kept by self-validation and the confidence threshold; ``in_ents``: of those, in
        ``doc.ents`` after the overlap rule (= true positives); ``predicted``: entities
        predicted; false positives split into ``fp_type`` (gold span, other label),
        ``fp_boundary`` (overlaps a gold entity) and ``fp_spurious`` (overlaps none); and the
        same counts as percentages of ``gold`` (``*_pct``).
    """
    c: Counter = Counter()
    by: Counter = Counter()
    only: Counter = Counter()
    for eg in examples:
        gold: Dict[Key, str] = {(e.start_char, e.end_char): e.label_ for e in eg.reference.ents}
        group = eg.predicted.spans.get(spans_key)
        cands: Dict[Key, Dict[str, Any]] = {}
        if group is not None:
            for span, info in zip(group, group.attrs.get("details", [])):
                cands[(span.start_char, span.end_char)] = info
        ents = {(e.start_char, e.end_char): e.label_ for e in eg.predicted.ents}
        c["gold"] += len(gold)
        for key, label in gold.items():
            info = cands.get(key)
            if info is None:
                continue
            c["extracted"] += 1
            members = info.get("extracted_by") or []
            by.update(members)
            if len(members) == 1:
                only[members[0]] += 1
            if info.get("label") != label:
                c["untyped" if info.get("label") is None else "mistyped"] += 1
                continue
            c["typed"] += 1
            if not info.get("accepted"):
                continue
            c["accepted"] += 1
            if ents.get(key) == label:
                c["in_ents"] += 1
        c["predicted"] += len(ents)
        for key, label in ents.items():
            if gold.get(key) == label:
                continue
            if key in gold:
                c["fp_type"] += 1
            elif any(s < key[1] and key[0] < e for s, e in gold):
                c["fp_boundary"] += 1
            else:
                c["fp_spurious"] += 1
    out: Dict[str, Any] = {k: c[k] for k in ("gold", "extracted", "untyped", "mistyped", "typed", "accepted", "in_ents", "predicted", "fp_type", "fp_boundary", "fp_spurious")}
    out["extracted_by"] = dict(by)
    out["only_by"] = dict(only)
    for k in ("extracted", "untyped", "mistyped", "typed", "accepted", "in_ents"):
        out[f"{k}_pct"] = _pct(c[k], c["gold"])
    out["extracted_by_pct"] = {m: _pct(n, c["gold"]) for m, n in by.items()}
    return out


Counts = Tuple[int, int, int]  # (true positives, false positives, false negatives) of one sentence


def micro_f1(rows: Sequence[Counts]) -> float:
    """Micro F1 (0-1) of per-sentence (tp, fp, fn) counts."""
    tp = sum(r[0] for r in rows)
    wrong = sum(r[1] + r[2] for r in rows)
    return 2.0 * tp / (2 * tp + wrong) if tp or wrong else 0.0


def paired_bootstrap(a: Sequence[Counts], b: Sequence[Counts], samples: int = 2000, seed: int = 0) -> Dict[str, float]:
    """How sure is it that run A's micro F1 beats run B's on the same sentences?

    Resamples sentences with replacement (the same sentences for both runs) and recomputes
    both F1s: the spread of the difference says whether a margin is larger than the choice
    of sentences.

    a, b (Sequence[Counts]): Per sentence, in the same order: (tp, fp, fn) of each run.
    samples (int): Bootstrap samples.
    seed (int): Random seed (the same seed gives the same interval).
    RETURNS (Dict[str, float]): ``f1_a``, ``f1_b``, ``diff`` (A - B), ``ci_low`` / ``ci_high``
        (the central 95% of the resampled differences) and ``p_not_better`` (share of samples
        where A does not beat B), F1s in percent.
    """
    if len(a) != len(b):
        raise ValueError(Errors.E605.format(n_a=len(a), n_b=len(b)))
    if not a:
        raise ValueError(Errors.E606)
    if samples < 1:
        raise ValueError(Errors.E607.format(value=samples))
    rng = random.Random(seed)
    n = len(a)
    diffs = []
    for _ in range(samples):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(micro_f1([a[i] for i in idx]) - micro_f1([b[i] for i in idx]))
    diffs.sort()
    lo, hi = diffs[int(0.025 * samples)], diffs[min(samples - 1, int(0.975 * samples))]
    f1_a, f1_b = micro_f1(a), micro_f1(b)
    return {
        "f1_a": round(100 * f1_a, 2),
        "f1_b": round(100 * f1_b, 2),
        "diff": round(100 * (f1_a - f1_b), 2),
        "ci_low": round(100 * lo, 2),
        "ci_high": round(100 * hi, 2),
        "p_not_better": round(sum(d <= 0 for d in diffs) / samples, 3),
        "sentences": n,
    }
