"""Stage 1: choose in-context demonstrations: by whole-text similarity (the default), by
span-level sentence similarity (SpanSim, the EL4NER paper's method) or at random."""
import hashlib
import logging
import random
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc

from ..models.protocol import Embedder, Model
from ..similarity import DEFAULT_OTHER_WEIGHT, DEFAULT_POS_WEIGHTS, span_sim_many, span_weight
from ..store import DemoStore
from ..errors import Errors
from ..runner import run_with
from ..ty import Retriever, Step  # noqa: F401  (Retriever: the Protocol, importable from here too)
from ..types import Demo, Unit
from .common import Settings
from .extract import extract_spans_steps

logger = logging.getLogger("spacy_el4ner")

PRE_EXTRACTION = ("llm", "heuristic", "llm+heuristic")


def to_demo(doc: Doc, n_negatives: int = 1) -> Demo:
    """A demonstration from a labelled Doc; its negatives are the longest words outside any
    entity (deterministic), so the prompts can show what is *not* an entity."""
    inside = {i for e in doc.ents for i in range(e.start, e.end)}
    words = [t.text for t in doc if t.i not in inside and t.is_alpha and not t.is_stop and len(t.text) > 2]
    negatives = sorted(dict.fromkeys(words), key=lambda w: (-len(w), w))[:n_negatives]
    return Demo(text=doc.text, entities=[(e.text, e.label_) for e in doc.ents], non_entities=negatives)


def _has_pos(doc: Doc) -> bool:
    return doc.has_annotation("POS") or doc.has_annotation("TAG")


def heuristic_spans(doc: Doc, unit: Unit) -> List[Tuple[int, int]]:
    """Cheap pre-extraction: runs of proper nouns when a tagger ran, else runs of capitalised,
    all-caps, @-mention or #-hashtag tokens (character offsets in the unit)."""
    span = doc.char_span(unit.offset, unit.offset + len(unit.text), alignment_mode="expand")
    if span is None:
        return []
    tagged = _has_pos(doc)
    out: List[Tuple[int, int]] = []
    run: List[int] = []

    def hit(i: int) -> bool:
        tok = doc[i]
        if tagged and tok.pos_:
            return tok.pos_ == "PROPN"
        t = tok.text
        return (t[:1].isupper() and any(c.isalpha() for c in t)) or (t[:1] in "@#" and len(t) > 1)

    for i in range(span.start, span.end + 1):
        if i < span.end and hit(i):
            run.append(i)
            continue
        if run:
            out.append((doc[run[0]].idx - unit.offset, doc[run[-1]].idx + len(doc[run[-1]]) - unit.offset))
            run = []
    return out


class SpanSimRetriever:
    """Top-k store docs by SpanSim against the unit's pre-extracted spans.

    k (int): Demonstrations per unit.
    embedder (Embedder): Span encoder (shared with the store).
    pre_extraction (str): "llm" (zero-shot extraction by every member, union; the method of the
        paper), "heuristic" (proper-noun / capitalised runs; no model call) or "llm+heuristic"
        (the union of both: the zero-shot answer of a small model is often empty, and a unit
        without query spans can only be matched on its whole text).
    max_empty (Optional[int]): At most this many of the k demonstrations may have no entity
        (None: no limit, the paper's rule). Demonstrations that all answer "[]" teach the
        extractor to answer "[]".
    pos_weights (Dict[str, float]): w(s) per coarse POS tag (span weight = its largest); used
        when a tagger ran, uniform weights otherwise.
    pre_extraction_by (Union[str, Sequence[str]]): The members whose zero-shot answers make the
        query spans: "all" (the union, the paper's rule), "first" (the first member, by
        convention the strongest) or a list of member names (names not in the pipeline are
        ignored; when none is left, every member is used). With members of unequal strength, a
        weak member's spans change the demonstrations that every member gets.
    """

    def __init__(
        self,
        k: int,
        embedder: Embedder,
        pre_extraction: str = "llm",
        pos_weights: Optional[Dict[str, float]] = None,
        other_weight: float = DEFAULT_OTHER_WEIGHT,
        max_empty: Optional[int] = None,
        pre_extraction_by: Union[str, Sequence[str]] = "all",
        pre_extraction_prefix: str = "",
    ) -> None:
        if pre_extraction not in PRE_EXTRACTION:
            raise ValueError(Errors.E024.format(part="SpanSimRetriever", key="pre_extraction", rule=f"one of {PRE_EXTRACTION}", value=pre_extraction))
        if k < 0:
            raise ValueError(Errors.E024.format(part="retriever", key="k", rule=">= 0", value=k))
        if max_empty is not None and max_empty < 0:
            raise ValueError(Errors.E024.format(part="retriever", key="max_empty", rule=">= 0 (or null for no limit)", value=max_empty))
        self.max_empty = max_empty
        if isinstance(pre_extraction_by, str):
            if pre_extraction_by not in ("all", "first"):
                raise ValueError(Errors.E024.format(part="SpanSimRetriever", key="pre_extraction_by", rule="'all', 'first' or a list of member names", value=pre_extraction_by))
        elif not pre_extraction_by or not all(isinstance(m, str) for m in pre_extraction_by):
            raise ValueError(Errors.E024.format(part="SpanSimRetriever", key="pre_extraction_by", rule="'all', 'first' or a non-empty list of member names", value=pre_extraction_by))
        self.pre_extraction_by: Union[str, List[str]] = (
            pre_extraction_by if isinstance(pre_extraction_by, str) else list(pre_extraction_by)
        )
        self._warned_missing = False
        self.pre_extraction_prefix = pre_extraction_prefix
        self.stats: Dict[str, int] = {"units": 0, "units_with_query_spans": 0}
        self.k = k
        self.embedder = embedder
        self.pre_extraction = pre_extraction
        self.pos_weights = dict(pos_weights or DEFAULT_POS_WEIGHTS)
        self.other_weight = other_weight

    def pre_extract(self, docs: List[Doc], units: List[Unit], members: Sequence[str], settings: Settings) -> Step[None]:
        """Set each unit's query spans (and their weights); a step: the zero-shot answers are
        requests to the members of ``pre_extraction_by``."""
        kinds = self.pre_extraction.split("+")
        for unit in units:
            unit.query_spans = []
        if "llm" in kinds:
            found = yield from extract_spans_steps(
                docs, units, self._pre_members(members), settings, with_demos=False, answer_prefix=self.pre_extraction_prefix
            )
            for unit, spans in zip(units, found):
                unit.query_spans = sorted(spans)
        if "heuristic" in kinds:
            for unit in units:
                unit.query_spans = sorted(set(unit.query_spans) | set(heuristic_spans(docs[unit.doc_index], unit)))
        self.stats["units"] += len(units)
        self.stats["units_with_query_spans"] += sum(bool(u.query_spans) for u in units)
        for unit in units:
            doc = docs[unit.doc_index]
            weights = []
            for start, end in unit.query_spans:
                span = doc.char_span(unit.offset + start, unit.offset + end, alignment_mode="expand")
                tags = [t.pos_ for t in span] if span is not None and _has_pos(doc) else []
                weights.append(span_weight(tags, self.pos_weights, self.other_weight))
            unit.query_weights = weights

    def _pre_members(self, members: Sequence[str]) -> List[str]:
        """The members that pre-extract (see ``pre_extraction_by``)."""
        members = list(members)
        if self.pre_extraction_by == "all" or not members:
            return members
        if self.pre_extraction_by == "first":
            return members[:1]
        chosen = [n for n in members if n in self.pre_extraction_by]
        if not chosen and not self._warned_missing:
            self._warned_missing = True  # once: the fallback holds for every batch
            logger.warning(
                "pre_extraction_by names no member of this pipeline (%s; members %s): every member pre-extracts "
                "for retrieval instead", self.pre_extraction_by, list(members),
            )
        return chosen or members

    def __call__(
        self, docs: List[Doc], units: List[Unit], members: Mapping[str, Model], store: DemoStore, settings: Settings
    ) -> None:
        """``steps`` with ``members``' models answering."""
        run_with(members, self.steps(docs, units, list(members), store, settings))

    def steps(self, docs: List[Doc], units: List[Unit], members: Sequence[str], store: DemoStore, settings: Settings) -> Step[None]:
        """Set ``unit.demos`` (and ``unit.demo_views``) for every unit."""
        if not units or self.k == 0 or len(store) == 0:
            return
        yield from self.pre_extract(docs, units, members, settings)
        cands, owners = store.span_index()
        doc_emb = store.doc_embeddings()
        for unit in units:
            texts = [unit.text[s:e] for s, e in unit.query_spans]
            sims = span_sim_many(self.embedder.embed(texts), unit.query_weights, cands, owners, len(store))
            # Ties (and units without spans) fall back to whole-text similarity.
            text_sim = doc_emb @ self.embedder.embed([unit.text])[0]
            order = sorted(range(len(store)), key=lambda i: (-sims[i], -float(text_sim[i]), i))
            order = [i for i in order if store.docs[i].text != unit.text]
            views: List[List[int]] = []
            for _ in range(settings.demo_views):
                chosen = self._choose(order, store)
                views.append(chosen)
                taken = set(chosen)
                order = [i for i in order if i not in taken]
            # Most similar last: closest to the question.
            unit.demos, *rest = [[to_demo(store.docs[i]) for i in reversed(v)] for v in views]
            unit.demo_views = rest
            logger.debug("retrieved for %r: %s", unit.text[:60], [round(float(sims[i]), 3) for i in views[0]])


    def _choose(self, order: List[int], store: DemoStore) -> List[int]:
        """The first k of ``order``, with at most ``max_empty`` docs without entities."""
        if self.max_empty is None:
            return order[: self.k]
        chosen: List[int] = []
        empty = 0
        for i in order:
            if len(chosen) == self.k:
                break
            if not store.docs[i].ents:
                if empty >= self.max_empty:
                    continue
                empty += 1
            chosen.append(i)
        return chosen


class SentenceSimRetriever(SpanSimRetriever):
    """Top-k store docs by whole-text similarity (cosine of the encoder's embeddings), no model
    call: SpanSim without query spans.

    k (int): Demonstrations per unit.
    embedder (Embedder): Text encoder (shared with the store).
    max_empty (Optional[int]): At most this many of the k demonstrations may have no entity (None:
        no limit).
    """

    def __init__(self, k: int, embedder: Embedder, max_empty: Optional[int] = 1) -> None:
        super().__init__(k, embedder, pre_extraction="heuristic", max_empty=max_empty)

    def pre_extract(self, docs: List[Doc], units: List[Unit], members: Sequence[str], settings: Settings) -> Step[None]:
        for unit in units:
            unit.query_spans = []
            unit.query_weights = []
        self.stats["units"] += len(units)
        return
        yield  # a step without requests


class RandomRetriever:
    """k demonstrations drawn at random (seeded by the unit's text): the ablation without retrieval."""

    def __init__(self, k: int, seed: int = 0) -> None:
        self.k = k
        self.seed = seed

    def __call__(
        self, docs: List[Doc], units: List[Unit], members: Mapping[str, Model], store: DemoStore, settings: Settings
    ) -> None:
        run_with(members, self.steps(docs, units, list(members), store, settings))

    def steps(self, docs: List[Doc], units: List[Unit], members: Sequence[str], store: DemoStore, settings: Settings) -> Step[None]:
        """Set ``unit.demos`` (and ``unit.demo_views``) for every unit; no model call."""
        for unit in units:
            h = int(hashlib.sha256(f"{self.seed}:{unit.text}".encode("utf8")).hexdigest()[:12], 16)
            rng = random.Random(h)
            pool = [i for i in range(len(store)) if store.docs[i].text != unit.text]
            drawn = rng.sample(pool, min(self.k * settings.demo_views, len(pool)))
            unit.demos = [to_demo(store.docs[i]) for i in drawn[: self.k]]
            unit.demo_views = [[to_demo(store.docs[i]) for i in drawn[v * self.k : (v + 1) * self.k]] for v in range(1, settings.demo_views)]
        return
        yield  # a step without requests
