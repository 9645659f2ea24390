"""Writing a batch's results into its Docs: ``doc.ents`` and every candidate in ``doc.spans``."""
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from spacy.tokens import Doc, Span, SpanGroup

from .align import select_entities
from .ensemble import acceptance
from .types import Unit


@dataclass(frozen=True)
class Acceptance:
    """The rules of the ``accept`` block that decide, per candidate, whether it becomes an entity."""

    validation_threshold: float
    min_confidence: float


def write_docs(
    docs: List[Doc], units: List[Unit], rules: Acceptance, spans_key: str, keep_existing: bool, stats: Dict[str, int]
) -> None:
    """Write ``doc.ents`` (non-overlapping, see ``align.select_entities``) and all candidates to
    ``doc.spans[spans_key]`` (attrs: "scores", "details", "unaligned"); count into ``stats``."""
    per_doc: Dict[int, List[Unit]] = {}
    for unit in units:
        per_doc.setdefault(unit.doc_index, []).append(unit)
    for i, doc in enumerate(docs):
        stats["docs"] += 1
        scored: List[Tuple[int, int, str, float]] = []
        group_spans: List[Span] = []
        details: List[Dict[str, Any]] = []
        scores: List[float] = []
        unaligned: List[List[str]] = []
        for unit in per_doc.get(i, []):
            stats["units"] += 1
            unaligned.extend([m, s] for m, s in unit.unaligned)
            stats["unaligned"] += len(unit.unaligned)
            for cand in sorted(unit.candidates.values(), key=lambda c: c.key):
                span = doc.char_span(unit.offset + cand.start, unit.offset + cand.end)
                if span is None:
                    continue
                stats["candidates"] += 1
                cand.confidence, accepted = acceptance(
                    cand.label, cand.label_score, cand.validation, rules.validation_threshold, rules.min_confidence,
                    cand.entity_score,
                )
                if cand.label is not None and not accepted:
                    stats["rejected"] += 1
                if accepted:
                    scored.append((span.start, span.end, cand.label, cand.confidence))
                group_spans.append(Span(doc, span.start, span.end, label=cand.label or "none"))
                scores.append(round(cand.confidence, 4))
                details.append(_details(span, cand, accepted))
        doc.ents = select_entities(doc, scored, keep_existing=keep_existing)
        group = SpanGroup(doc, name=spans_key, spans=group_spans)
        group.attrs["scores"] = scores
        group.attrs["details"] = details
        group.attrs["unaligned"] = unaligned
        doc.spans[spans_key] = group


def _details(span: Span, cand: Any, accepted: bool) -> Dict[str, Any]:
    """What every stage said about one candidate (JSON-serialisable)."""
    return {
        "text": span.text,
        "label": cand.label,
        "accepted": accepted,
        "extracted_by": sorted(cand.extracted_by),
        # fine-tuning-prompt and spaCy members: the labels they extracted it under
        "extracted_as": {m: sorted(ls) for m, ls in sorted(cand.extracted_as.items())},
        "votes": dict(cand.votes),
        "label_probs": {m: {k: round(v, 4) for k, v in p.items()} for m, p in cand.label_probs.items()},
        "type_prior": None if cand.type_prior is None else {k: round(v, 4) for k, v in cand.type_prior.items()},
        "label_score": round(cand.label_score, 4),
        "validation": None if cand.validation is None else round(cand.validation, 4),
        "entity_score": None if cand.entity_score is None else round(cand.entity_score, 4),
        "confidence": round(cand.confidence, 4),
        "refined_from": cand.refined_from,
    }
