"""Map model strings to token spans, and choose non-overlapping entities."""
import re
import string
from typing import Iterable, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span

_EDGE_PUNCT = string.punctuation + "\u201c\u201d\u2018\u2019\u00ab\u00bb"
_MAX_SNAP_GROWTH = 2  # characters a match may grow by to reach token boundaries


def find_occurrences(text: str, needle: str) -> List[Tuple[int, int]]:
    """Every occurrence of ``needle`` in ``text``: exact matches first; if there are none,
    case- and whitespace-insensitive matches; if still none, the needle without edge punctuation.

    RETURNS (List[Tuple[int, int]]): Character offsets (start, end), in order.
    """
    needle = needle.strip()
    if not needle or not text:
        return []
    for variant in _variants(needle):
        found = _exact(text, variant)
        if not found:
            found = _fuzzy(text, variant)
        if found:
            return found
    return []


def _variants(needle: str) -> Iterable[str]:
    yield needle
    stripped = needle.strip(_EDGE_PUNCT).strip()
    if stripped and stripped != needle:
        yield stripped


def _exact(text: str, needle: str) -> List[Tuple[int, int]]:
    out = []
    start = text.find(needle)
    while start != -1:
        out.append((start, start + len(needle)))
        start = text.find(needle, start + len(needle))
    return out


def _fuzzy(text: str, needle: str) -> List[Tuple[int, int]]:
    words = needle.split()
    if not words:
        return []
    pattern = r"\s*".join(re.escape(w) for w in words)
    return [(m.start(), m.end()) for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def snap(doc: Doc, start: int, end: int) -> Optional[Tuple[int, int]]:
    """Snap character offsets of ``doc`` to token boundaries.

    An exact token match is kept; otherwise the span is expanded to whole tokens if that adds at
    most a couple of characters (e.g. "U.S" -> "U.S."), so that "Cook" never becomes "Cooking".
    RETURNS (Optional[Tuple[int, int]]): Token offsets, or None.
    """
    span = doc.char_span(start, end)
    if span is None:
        span = doc.char_span(start, end, alignment_mode="expand")
        if span is None or (span.end_char - span.start_char) - (end - start) > _MAX_SNAP_GROWTH:
            return None
    if len(span) == 0 or not span.text.strip():
        return None
    return span.start, span.end


def non_overlapping(scored: Sequence[Tuple[int, int, str, float]]) -> List[Tuple[int, int, str, float]]:
    """The greedy choice behind ``select_entities``, on any offsets (tokens or characters):
    highest score first, then longest, then earliest; an item overlapping one already taken is
    skipped, and so is an empty one.

    RETURNS (List[Tuple[int, int, str, float]]): The chosen items, in the order they were taken.
    """
    taken: List[Tuple[int, int]] = []
    chosen = []
    for item in sorted(scored, key=lambda x: (-x[3], -(x[1] - x[0]), x[0])):
        start, end = item[0], item[1]
        if end <= start or any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        chosen.append(item)
    return chosen


def select_entities(
    doc: Doc,
    scored: Sequence[Tuple[int, int, str, float]],
    keep_existing: bool = True,
) -> List[Span]:
    """Choose non-overlapping entities.

    Rule: candidates are taken greedily by confidence (highest first), then length (longest
    first), then position (earliest first), skipping any that overlap one already taken
    (``non_overlapping``). Entities already on the Doc are kept where they overlap none of
    those chosen.

    scored: (start token, end token, label, confidence) per typed candidate.
    RETURNS (List[Span]): The entities, in document order.
    """
    chosen = [Span(doc, start, end, label=label) for start, end, label, _ in non_overlapping(scored)]
    if keep_existing:
        taken = [False] * len(doc)
        for span in chosen:
            for i in range(span.start, span.end):
                taken[i] = True
        for ent in doc.ents:
            if not any(taken[ent.start : ent.end]):
                chosen.append(ent)
    return sorted(chosen, key=lambda s: s.start)
