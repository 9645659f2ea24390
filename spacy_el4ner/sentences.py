"""Split a Doc into units that fit the models' context: whole Doc, or runs of sentences."""
import logging
from typing import List, Optional, Tuple

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc

from .errors import Warnings
from .types import Unit

logger = logging.getLogger("spacy_el4ner")

_PUNCT = set(Sentencizer.default_punct_chars)
# Characters per spaCy token that a unit may average: English text runs at 3-6, so this bound
# only bites on text whose "tokens" are huge (a URL, a base64 blob, 20,000 characters of one word),
# which a unit sized in spaCy tokens alone would send whole into a prompt.
CHARS_PER_TOKEN = 8


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


def split_units(
    doc: Doc, doc_index: int, max_tokens: int, skipped: Optional[List[Tuple[int, int]]] = None
) -> List[Unit]:
    """Units of at most ``max_tokens`` tokens and ``CHARS_PER_TOKEN * max_tokens`` characters,
    cut at sentence ends (or hard-cut inside a sentence that is longer). Whitespace-only Docs give
    no units. A single token longer than the character bound is left out of every unit (no prompt
    could hold it, no entity is one): its (start, end) characters go to ``skipped``, with a warning."""
    if not doc.text.strip():
        return []
    max_chars = CHARS_PER_TOKEN * max_tokens
    if len(doc) <= max_tokens and len(doc.text) <= max_chars:
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
            units.extend(_by_chars(doc, doc_index, cur_start, cur_end, max_chars, skipped))
            cur_start, cur_end = a, b
    units.extend(_by_chars(doc, doc_index, cur_start, cur_end, max_chars, skipped))
    return [u for u in units if u.text.strip()]


def _by_chars(
    doc: Doc, doc_index: int, start: int, end: int, max_chars: int, skipped: Optional[List[Tuple[int, int]]]
) -> List[Unit]:
    """Tokens ``start:end`` as units of at most ``max_chars`` characters (token boundaries)."""
    if len(doc[start:end].text) <= max_chars:
        return [_unit(doc, doc_index, start, end)]
    units: List[Unit] = []
    a = start
    for i in range(start, end):
        tok = doc[i]
        if len(tok.text) > max_chars:
            if i > a:
                units.append(_unit(doc, doc_index, a, i))
            logger.warning(Warnings.W004.format(n=len(tok.text), at=tok.idx))
            if skipped is not None:
                skipped.append((tok.idx, tok.idx + len(tok.text)))
            a = i + 1
        elif doc[i].idx + len(tok.text) - doc[a].idx > max_chars:
            units.append(_unit(doc, doc_index, a, i))
            a = i
    if a < end:
        units.append(_unit(doc, doc_index, a, end))
    return units


def _unit(doc: Doc, doc_index: int, start: int, end: int) -> Unit:
    span = doc[start:end]
    return Unit(doc_index=doc_index, offset=span.start_char, text=span.text)
