"""Optional step after classification: span edges by the store's casing convention.

Small extractors often copy a word too many around a name ("Siemens executives", "former
Toyota"). Whether a lower-case word may start or end an entity is a convention of the data:
CrossNER's politicians, parties and countries never end in one (0-2% of 359/195/62 training
spans), its elections mostly do ("2004 presidential election", 85%), and in WNUT-17 tweets and
NCBI-disease names lower case is everywhere (10-66%). ``StoreCasingTrim`` reads that convention
per label from the demonstration store and trims lower-case edge words off a typed candidate
only where its label has (almost) none; labels with few stored spans are left alone. No model
call; the trimmed span is what self-validation then checks. Measured in benchmarks/RESULTS.md,
session 6.
"""
import logging
from typing import Dict, List, Optional, Protocol, Tuple, runtime_checkable

from spacy.tokens import Doc, Span

from ..types import Unit

logger = logging.getLogger("spacy_el4ner")


@runtime_checkable
class BoundaryRule(Protocol):
    """Adjusts the edges of typed candidates in place, from the store; no model call."""

    def __call__(self, docs: List[Doc], units: List[Unit], store: "object") -> int:
        """RETURNS (int): How many candidates were changed."""
        ...


def _lower(token: "object") -> bool:
    return bool(getattr(token, "is_lower", False))


class StoreCasingTrim:
    """Trim lower-case words off the edges of a typed candidate when the store's spans of its
    label (almost) never start / end in one.

    max_rate (float): A label's edge is trimmed when at most this fraction of its stored spans
        has a lower-case word there.
    min_count (int): Labels with fewer stored spans are never trimmed (too little evidence).
    """

    def __init__(self, max_rate: float = 0.05, min_count: int = 5) -> None:
        if not 0.0 <= max_rate < 1.0:
            raise ValueError("StoreCasingTrim: max_rate must be in [0, 1)")
        if min_count < 1:
            raise ValueError("StoreCasingTrim: min_count must be >= 1")
        self.max_rate = max_rate
        self.min_count = min_count
        self._key: Optional[tuple] = None
        self._rules: Dict[str, Tuple[bool, bool]] = {}

    def rates(self, store: "object") -> Dict[str, Tuple[float, float, int]]:
        """RETURNS: label -> (share of its stored spans starting with a lower-case word, share
        ending with one, number of spans)."""
        counts: Dict[str, List[int]] = {}
        for doc in getattr(store, "docs", []):
            for ent in doc.ents:
                c = counts.setdefault(ent.label_, [0, 0, 0])
                c[0] += _lower(ent[0])
                c[1] += _lower(ent[-1])
                c[2] += 1
        return {label: (c[0] / c[2], c[1] / c[2], c[2]) for label, c in counts.items()}

    def rules(self, store: "object") -> Dict[str, Tuple[bool, bool]]:
        """RETURNS: label -> (trim the start, trim the end), for the labels the store allows to trim."""
        docs = getattr(store, "docs", [])
        key = (id(store), len(docs), sum(len(d.ents) for d in docs))
        if key != self._key:
            self._rules = {}
            for label, (first, last, n) in self.rates(store).items():
                if n >= self.min_count and (first <= self.max_rate or last <= self.max_rate):
                    self._rules[label] = (first <= self.max_rate, last <= self.max_rate)
            self._key = key
            logger.debug("casing trim: %s", self._rules)
        return self._rules

    def trimmed(self, span: Span, start: bool, end: bool) -> Optional[Span]:
        """RETURNS: The span without its lower-case edge words (at least one token is kept), or
        None when nothing is trimmed, when what is left still starts and ends in lower case (an
        all-lower-case span: no name to keep) or is only punctuation."""
        i, j = span.start, span.end
        while end and j - i > 1 and _lower(span.doc[j - 1]):
            j -= 1
        while start and j - i > 1 and _lower(span.doc[i]):
            i += 1
        sub = span.doc[i:j]
        if (i, j) == (span.start, span.end) or (_lower(sub[0]) and _lower(sub[-1])) or all(t.is_punct for t in sub):
            return None
        return sub

    def __call__(self, docs: List[Doc], units: List[Unit], store: "object") -> int:
        rules = self.rules(store)
        if not rules:
            return 0
        changed = 0
        for unit in units:
            doc = docs[unit.doc_index]
            for cand in list(unit.candidates.values()):
                rule = rules.get(cand.label) if cand.label is not None else None
                if rule is None:
                    continue
                span = doc.char_span(unit.offset + cand.start, unit.offset + cand.end)
                sub = None if span is None else self.trimmed(span, *rule)
                if sub is None:
                    continue
                key = (sub.start_char - unit.offset, sub.end_char - unit.offset)
                del unit.candidates[cand.key]
                existing = unit.candidates.get(key)
                if existing is not None:  # the shorter span was extracted too: one candidate, its own typing
                    existing.extracted_by |= cand.extracted_by
                    existing.refined_from = existing.refined_from or cand.text
                else:
                    cand.start, cand.end = key
                    cand.refined_from = cand.text
                    cand.text = unit.text[key[0] : key[1]]
                    unit.candidates[key] = cand
                changed += 1
        return changed

