"""Split a Doc into units that fit the models' context: whole Doc, or runs of sentences."""
from typing import List

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc

from .types import Unit

_PUNCT = set(Sentencizer.default_punct_chars)


def _sentence_starts(doc: Doc) -> List[int]:
    if doc.has_annotation("SENT_START"):
        return [s.start for s in doc.sents]
    starts = [0]
    seen_punct = False
    for tok in doc:
        if seen_punct and not tok.is_punct:
            starts.append(tok.i)
            seen_punct = False
        if tok.text in _PUNCT or (tok.text and tok.text[-1] in _PUNCT and tok.is_punct):
            seen_punct = True
    return starts


def split_units(doc: Doc, doc_index: int, max_tokens: int) -> List[Unit]:
    """Units of at most ``max_tokens`` tokens, cut at sentence ends (or hard-cut inside a
    sentence that is longer). Whitespace-only Docs give no units."""
    if not doc.text.strip():
        return []
    if len(doc) <= max_tokens:
        return [Unit(doc_index=doc_index, offset=0, text=doc.text)]
    bounds = _sentence_starts(doc) + [len(doc)]
    pieces: List[tuple] = []
    for a, b in zip(bounds, bounds[1:]):
        while b - a > max_tokens:
            pieces.append((a, a + max_tokens))
            a += max_tokens
        if b > a:
            pieces.append((a, b))
    units: List[Unit] = []
    cur_start, cur_end = pieces[0]
    for a, b in pieces[1:]:
        if b - cur_start <= max_tokens:
            cur_end = b
        else:
            units.append(_unit(doc, doc_index, cur_start, cur_end))
            cur_start, cur_end = a, b
    units.append(_unit(doc, doc_index, cur_start, cur_end))
    return [u for u in units if u.text.strip()]


def _unit(doc: Doc, doc_index: int, start: int, end: int) -> Unit:
    span = doc[start:end]
    return Unit(doc_index=doc_index, offset=span.start_char, text=span.text)
