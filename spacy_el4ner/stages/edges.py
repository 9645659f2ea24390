"""Optional step after classification: span edges by the conventions of the store's spans.

Small extractors often copy a word too many around a name ("Siemens executives", "the
referendum in Scotland", "Scottish National Party ( SNP )") or stop one short ("Japanese general election"
for "2012 Japanese general election"). Where an entity starts and ends is a convention of the
data, and the demonstration store holds it, per label:

* lower-case edge words: CrossNER's politicians, parties and countries never end in one (0-2% of
  359 / 195 / 62 training spans), its elections mostly do ("2004 presidential election", 85%);
  WNUT-17 tweets and NCBI-disease names are full of lower case (10-66%);
* lower-case stop words at the edges ("the", "of", "in"): 0-5% for almost every label of the
  three corpora, also where other lower-case words are common (elections end in "election");
* brackets inside a span: none in any of them (an acronym in brackets is a span of its own);
* a leading number: 98% of CrossNER's elections start with their year.

``StoreEdges`` reads these rates from the store and, for a typed candidate, cuts it at a bracket,
trims lower-case / stop words off an edge, or takes in the number just before it, only where the
candidate's label (with at least ``min_count`` stored spans) shows that convention. No model
call; the adjusted span is what self-validation then checks. Measured in
benchmarks/RESULTS.md (#span-edges).
"""
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional

from spacy.tokens import Doc, Span, Token

from ..errors import Errors
from ..ty import BoundaryRule  # noqa: F401  (the Protocol, importable from here too)
from ..types import Unit

logger = logging.getLogger("spacy_el4ner")

BRACKETS = frozenset("()[]{}")


@dataclass(frozen=True)
class EdgeRules:
    """What may be done to the spans of one label."""

    lower_start: bool = False
    lower_end: bool = False
    stop_start: bool = False
    stop_end: bool = False
    cut_brackets: bool = False
    take_number: bool = False

    def any(self) -> bool:
        return any(vars(self).values())


def _is_lower(token: Token) -> bool:
    return token.is_lower


def _is_stop(token: Token) -> bool:
    """A lower-case stop word ("the", "of", "in"). Capitalised ones are left alone: in "Rogue
    One", "Five Guys", "The Who" they belong to the name (of 9 such trims on CrossNER politics
    dev 100, 8 spans were gold spans before and 1 after)."""
    return token.is_stop and token.is_lower


def _is_bracket(token: Token) -> bool:
    return token.text in BRACKETS


def _is_number(token: Token) -> bool:
    return token.like_num


FEATURES = {
    "lower_start": lambda ent: _is_lower(ent[0]),
    "lower_end": lambda ent: _is_lower(ent[-1]),
    "stop_start": lambda ent: _is_stop(ent[0]),
    "stop_end": lambda ent: _is_stop(ent[-1]),
    "bracket": lambda ent: any(_is_bracket(t) for t in ent),
    "number_start": lambda ent: _is_number(ent[0]),
}


class StoreEdges:
    """Adjust the edges of typed candidates to the conventions of the store's spans of their label.

    max_rate (float): An edge word class (lower case, stop word) is trimmed, and a span cut at a
        bracket, when at most this fraction of the label's stored spans has one there.
    min_count (int): Labels with fewer stored spans are left alone (too little evidence).
    number_rate (float): A number just before the span is taken in when at least this fraction
        of the label's stored spans starts with a number (> 1: never).
    lower_case / stop_words / brackets / numbers (bool): Which conventions to apply.
    """

    def __init__(
        self,
        max_rate: float = 0.05,
        min_count: int = 5,
        number_rate: float = 0.9,
        lower_case: bool = True,
        stop_words: bool = True,
        brackets: bool = True,
        numbers: bool = True,
    ) -> None:
        if not 0.0 <= max_rate < 1.0:
            raise ValueError(Errors.E024.format(part="StoreEdges", key="max_rate", rule="in [0, 1)", value=max_rate))
        if min_count < 1:
            raise ValueError(Errors.E024.format(part="StoreEdges", key="min_count", rule=">= 1", value=min_count))
        if number_rate <= 0.0:
            raise ValueError(Errors.E024.format(part="StoreEdges", key="number_rate", rule="> 0 (above 1: never take a number in)", value=number_rate))
        self.max_rate = max_rate
        self.min_count = min_count
        self.number_rate = number_rate
        self.lower_case = lower_case
        self.stop_words = stop_words
        self.brackets = brackets
        self.numbers = numbers
        self._key: Optional[tuple] = None
        self._rules: Dict[str, EdgeRules] = {}

    def rates(self, store: "object") -> Dict[str, Dict[str, float]]:
        """RETURNS: label -> {feature: share of its stored spans that have it, "n": count}; the
        features are lower_start, lower_end, stop_start, stop_end, bracket and number_start."""
        counts: Dict[str, Dict[str, float]] = {}
        for doc in getattr(store, "docs", []):
            for ent in doc.ents:
                c = counts.setdefault(ent.label_, {"n": 0.0, **{f: 0.0 for f in FEATURES}})
                c["n"] += 1
                for name, has in FEATURES.items():
                    c[name] += has(ent)
        return {label: {k: (v if k == "n" else v / c["n"]) for k, v in c.items()} for label, c in counts.items()}

    def rules(self, store: "object") -> Dict[str, EdgeRules]:
        """RETURNS: label -> what may be done to its spans, for the labels with something to do."""
        key = (id(store), len(getattr(store, "docs", [])), getattr(store, "n_spans", 0))
        if key != self._key:
            self._rules = {}
            low = self.max_rate
            for label, r in self.rates(store).items():
                if r["n"] < self.min_count:
                    continue
                rule = EdgeRules(
                    lower_start=self.lower_case and r["lower_start"] <= low,
                    lower_end=self.lower_case and r["lower_end"] <= low,
                    stop_start=self.stop_words and r["stop_start"] <= low,
                    stop_end=self.stop_words and r["stop_end"] <= low,
                    cut_brackets=self.brackets and r["bracket"] <= low,
                    take_number=self.numbers and r["number_start"] >= self.number_rate,
                )
                if rule.any():
                    self._rules[label] = rule
            self._key = key
            logger.debug("span edges from the store: %s", self._rules)
        return self._rules

    def adjusted(self, span: Span, rule: EdgeRules) -> Optional[Span]:
        """RETURNS: The span with its edges adjusted by ``rule`` (at least one token is kept), or
        None when nothing changes or the result would not be a name (only lower-case / stop
        words, or only punctuation)."""
        doc = span.doc
        i, j = span.start, span.end
        if rule.cut_brackets:
            first = next((k for k in range(i, j) if _is_bracket(doc[k])), None)
            if first is not None and first > i:
                j = first

        def trim_end(k: int) -> bool:
            t = doc[k]
            return (rule.lower_end and _is_lower(t)) or (rule.stop_end and _is_stop(t))

        def trim_start(k: int) -> bool:
            t = doc[k]
            return (rule.lower_start and _is_lower(t)) or (rule.stop_start and _is_stop(t))

        while j - i > 1 and trim_end(j - 1):
            j -= 1
        while j - i > 1 and trim_start(i):
            i += 1
        if rule.take_number and i > 0 and not _is_number(doc[i]) and _is_number(doc[i - 1]):
            i -= 1
        sub = doc[i:j]
        lower_kept = _is_lower(sub[0]) and _is_lower(sub[-1]) and (rule.lower_start or rule.lower_end)
        only_stop = all(_is_stop(t) or t.is_punct for t in sub)
        if (i, j) == (span.start, span.end) or lower_kept or only_stop:
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
                sub = None if span is None else self.adjusted(span, rule)
                if sub is None:
                    continue
                start, end = sub.start_char - unit.offset, sub.end_char - unit.offset
                if start < 0:  # the number taken in lies before the unit: leave the span as it was
                    continue
                del unit.candidates[cand.key]
                existing = unit.candidates.get((start, end))
                if existing is not None:  # the adjusted span was extracted too: one candidate, its own typing
                    existing.extracted_by |= cand.extracted_by
                    existing.refined_from = existing.refined_from or cand.text
                else:
                    cand.start, cand.end = start, end
                    cand.refined_from = cand.text
                    cand.text = unit.text[start:end]
                    unit.candidates[(start, end)] = cand
                changed += 1
        return changed
