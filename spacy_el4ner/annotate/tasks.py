"""Prodigy-compatible annotation tasks from annotated Docs, and answers back to labelled Docs.

A task is the dict Prodigy's ``ner_manual`` interface reads: ``text``, ``tokens`` (``text``,
``start``, ``end``, ``id``, ``ws``), ``spans`` (``start``, ``end``, ``token_start``, ``token_end``
(inclusive), ``label``, ``score``), ``meta`` and the hashes ``_input_hash`` (of the text) and
``_task_hash`` (of the text and its spans). ``meta`` holds the sentence's confidence and every
candidate the ensemble considered, with each member's vote.
"""
import hashlib
import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from ..errors import Errors

ANSWERS = ("accept", "reject", "ignore")
VIEW_ID = "ner_manual"


class BadAnswer(ValueError):
    """An answer that cannot be stored as it is (the server answers 400)."""


def _hash(value: Any) -> int:
    """A signed 32-bit hash of a JSON value, stable across runs and machines (as Prodigy's are ints)."""
    data = json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big", signed=True)


def input_hash(text: str) -> int:
    return _hash({"text": text})


def task_hash(in_hash: int, spans: Sequence[Mapping[str, Any]]) -> int:
    key = sorted((int(s["start"]), int(s["end"]), str(s["label"])) for s in spans)
    return _hash({"input": in_hash, "spans": key})


def tokens_of(doc: Doc) -> List[Dict[str, Any]]:
    return [
        {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
        for t in doc
    ]


def span_dict(span: Span, score: Optional[float] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "start": span.start_char, "end": span.end_char, "token_start": span.start, "token_end": span.end - 1,
        "label": span.label_,
    }
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def confidence(scores: Iterable[float]) -> float:
    """How sure the ensemble is about a sentence: its least sure decision, max(p, 1 - p) over the
    candidates' confidences (1.0 without candidates). Low first is uncertainty order."""
    margins = [max(float(p), 1.0 - float(p)) for p in scores]
    return round(min(margins), 4) if margins else 1.0


def task_from_doc(doc: Doc, spans_key: str = "el4ner", meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The task for a Doc the el4ner component annotated: its entities as spans with their
    confidence, and every candidate (accepted or not) with the members' votes in ``meta``."""
    group = doc.spans[spans_key] if spans_key in doc.spans else None
    scores = list(group.attrs.get("scores", [])) if group is not None else []
    details = list(group.attrs.get("details", [])) if group is not None else []
    by_offsets: Dict[tuple, float] = {}
    candidates = []
    for i, span in enumerate(group or []):
        score = scores[i] if i < len(scores) else None
        detail = details[i] if i < len(details) else {}
        if detail.get("accepted") and score is not None:
            by_offsets[(span.start, span.end, span.label_)] = score
        candidates.append({
            **span_dict(span, score),
            "label": detail.get("label", span.label_),
            "accepted": bool(detail.get("accepted")),
            "votes": dict(detail.get("votes", {})),
            "extracted_by": list(detail.get("extracted_by", [])),
        })
    spans = [span_dict(e, by_offsets.get((e.start, e.end, e.label_))) for e in doc.ents]
    in_hash = input_hash(doc.text)
    task_meta: Dict[str, Any] = dict(meta or {})
    task_meta.update({
        "confidence": confidence(c["score"] for c in candidates if c.get("score") is not None),
        "candidates": candidates,
    })
    return {
        "text": doc.text,
        "tokens": tokens_of(doc),
        "spans": spans,
        "meta": task_meta,
        "_input_hash": in_hash,
        "_task_hash": task_hash(in_hash, spans),
        "_view_id": VIEW_ID,
    }


def order_by_uncertainty(tasks: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Lowest-confidence sentences first (stable: ties keep the source order)."""
    return sorted(tasks, key=lambda t: t["meta"].get("confidence", 1.0))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def clean_spans(task: Mapping[str, Any], spans: Any, labels: Sequence[str]) -> List[Dict[str, Any]]:
    """Check an answer's spans against its task: a list of objects with integer ``start``/``end``
    on token boundaries of the text, a known ``label``, no overlaps. RETURNS the spans with
    ``token_start``/``token_end``, sorted. RAISES (BadAnswer): for anything else."""
    tokens = task["tokens"]
    if not isinstance(spans, list) or len(spans) > len(tokens):
        raise BadAnswer(Errors.E410.format(limit=len(tokens), value=type(spans).__name__ if not isinstance(spans, list) else f"{len(spans)} spans"))
    starts = {t["start"]: t["id"] for t in tokens}
    ends = {t["end"]: t["id"] for t in tokens}
    text = task["text"]
    out = []
    for sp in spans:
        if not isinstance(sp, dict):
            raise BadAnswer(Errors.E410.format(limit=len(tokens), value=repr(sp)[:60]))
        start, end, label = sp.get("start"), sp.get("end"), sp.get("label")
        if not _int(start) or not _int(end):
            raise BadAnswer(Errors.E417.format(start=start, end=end))
        if not isinstance(label, str) or label not in labels:
            raise BadAnswer(Errors.E411.format(label=label, labels=", ".join(labels)))
        if not 0 <= start < end <= len(text):
            raise BadAnswer(Errors.E412.format(start=start, end=end, n=len(text)))
        if start not in starts or end not in ends:
            raise BadAnswer(Errors.E413.format(start=start, end=end, text=text[start:end]))
        out.append({"start": start, "end": end, "token_start": starts[start], "token_end": ends[end], "label": label})
    out.sort(key=lambda s: (s["start"], s["end"]))
    for a, b in zip(out, out[1:]):
        if b["start"] < a["end"]:
            raise BadAnswer(Errors.E414.format(a=f"{a['start']}, {a['end']}", b=f"{b['start']}, {b['end']}"))
    return out


def doc_from_example(vocab: Vocab, example: Mapping[str, Any]) -> Doc:
    """A labelled Doc from an answered task: its own tokens, its spans as ``doc.ents``."""
    tokens = example["tokens"]
    doc = Doc(vocab, words=[t["text"] for t in tokens], spaces=[bool(t["ws"]) for t in tokens])
    doc.ents = [Span(doc, s["token_start"], s["token_end"] + 1, label=s["label"]) for s in example["spans"]]
    return doc
