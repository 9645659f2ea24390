"""Constrained decoding: the answer may only be made of separators and copies of the input text.

The generated text must be a concatenation of pieces, each a separator string (e.g. "<<< ",
" >>>", newline) or a non-empty substring of the input text, where two text pieces are always
separated by a separator (so a mention is one contiguous copy of the input). Everything is
checked on bytes (UTF-8), so byte-level BPE tokens that split a character are handled.

Usage with ``model.generate``::

    proc = substring_processor(tokenizer, [text_of_row_0, text_of_row_1], SEPARATORS)
    model.generate(input_ids, ..., logits_processor=LogitsProcessorList([proc]))

One processor per ``generate`` call: it takes the prompt width from the first call (or from
``prompt_length``).
"""
import logging
import re
import weakref
from collections import OrderedDict
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union

import torch
from transformers import LogitsProcessor

from ..errors import Errors

logger = logging.getLogger("spacy_el4ner")

# A state of the automaton: ("B", b"") at a boundary (start, or just after a complete separator),
# ("T", piece) inside a text piece, ("S", prefix) inside a separator.
State = Tuple[str, bytes]
States = FrozenSet[State]
_BOUNDARY: State = ("B", b"")
_TABLES: "weakref.WeakKeyDictionary[Any, List[Optional[bytes]]]" = weakref.WeakKeyDictionary()


def _bytes_to_unicode() -> Dict[int, str]:
    """The GPT-2 byte <-> printable character table of byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _decoder_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.decoder is not None:
        import json

        try:
            decoder = json.loads(backend.decoder.__getstate__()) or {}
        except (AttributeError, ValueError, TypeError):
            decoder = {}
        kinds = [decoder.get("type")] + [d.get("type") for d in decoder.get("decoders", []) or []]
        if "ByteLevel" in kinds:
            return "bytelevel"
        if "ByteFallback" in kinds or "Metaspace" in kinds or "Replace" in kinds:
            return "sentencepiece"
    return "decode"


def token_bytes(tokenizer: Any) -> List[Optional[bytes]]:
    """The bytes each token id adds to the decoded text (None for special tokens).

    Byte-level BPE (GPT-2, Qwen, SmolLM) maps token characters back to bytes; SentencePiece-style
    vocabularies turn "▁" into a space and "<0xNN>" into a byte; other tokenizers fall back to
    decoding the token alone. Cached per tokenizer.
    """
    cached = _TABLES.get(tokenizer)
    if cached is not None:
        return cached
    kind = _decoder_kind(tokenizer)
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    added = tokenizer.get_added_vocab()
    table: List[Optional[bytes]] = [None] * len(tokenizer)
    hexbyte = re.compile(r"<0x([0-9A-Fa-f]{2})>")
    for piece, tid in tokenizer.get_vocab().items():
        if tid in special or tid >= len(table):
            continue
        value: Optional[bytes]
        if piece in added:
            value = piece.encode("utf-8")
        elif kind == "bytelevel":
            try:
                value = bytes(byte_of[c] for c in piece)
            except KeyError:
                value = tokenizer.decode([tid]).encode("utf-8")
        elif kind == "sentencepiece":
            m = hexbyte.fullmatch(piece)
            value = bytes([int(m.group(1), 16)]) if m else piece.replace("\u2581", " ").encode("utf-8")
        else:
            value = tokenizer.decode([tid]).encode("utf-8")
        table[tid] = value or None
    try:
        _TABLES[tokenizer] = table
    except TypeError:  # pragma: no cover - not weak-referenceable
        pass
    return table


class SubstringAutomaton:
    """Accepts the byte strings made of separators and substrings of one text.

    text (bytes): The input text.
    separators (Sequence[bytes]): The separator strings (non-empty).
    """

    def __init__(self, text: bytes, separators: Sequence[bytes]) -> None:
        self.text = text
        self.separators = tuple(dict.fromkeys(s for s in separators if s))
        if not self.separators:
            raise ValueError(Errors.E112)
        self._prefixes: Set[bytes] = {s[:i] for s in self.separators for i in range(1, len(s))}
        self._complete: Set[bytes] = set(self.separators)
        self.start: States = frozenset([_BOUNDARY])

    def _start_piece(self, c: bytes, out: Set[State]) -> None:
        """Start a new piece with byte ``c`` (after a boundary or a text piece)."""
        if c in self.text:
            out.add(("T", c))
        self._separator(c, out)

    def _separator(self, partial: bytes, out: Set[State]) -> None:
        if partial in self._prefixes:
            out.add(("S", partial))
        if partial in self._complete:
            out.add(_BOUNDARY)

    def advance(self, states: States, data: bytes) -> States:
        """RETURNS (States): The states after reading ``data`` (empty when it is not allowed)."""
        current: Set[State] = set(states)
        for i in range(len(data)):
            c = data[i : i + 1]
            nxt: Set[State] = set()
            for kind, piece in current:
                if kind == "B":
                    self._start_piece(c, nxt)
                elif kind == "T":
                    if piece + c in self.text:
                        nxt.add(("T", piece + c))
                    self._separator(c, nxt)  # a separator may follow a text piece directly
                else:
                    self._separator(piece + c, nxt)
            if not nxt:
                return frozenset()
            current = _prune(nxt)
        return frozenset(current)

    def at_boundary(self, states: States) -> bool:
        """RETURNS (bool): Whether the text read so far ends with a complete separator (or is empty)."""
        return _BOUNDARY in states

    def in_text(self, states: States) -> bool:
        """RETURNS (bool): Whether the text read so far may end inside a (complete) text piece."""
        return any(kind == "T" for kind, _ in states)


def _prune(states: Set[State]) -> Set[State]:
    # Text pieces are all suffixes of the bytes read so far, and a shorter suffix of the text
    # allows every continuation a longer one allows: keep the shortest.
    texts = [s for s in states if s[0] == "T"]
    if len(texts) <= 1:
        return states
    keep = min(texts, key=lambda s: len(s[1]))
    return {s for s in states if s[0] != "T"} | {keep}


def _candidates(table: List[Optional[bytes]], text: bytes, separators: Tuple[bytes, ...]) -> Tuple[int, ...]:
    auto = SubstringAutomaton(text, separators)
    # Every state a token can start from: a boundary, inside a text piece (a text piece may
    # continue with any substring, which a boundary state covers too) or inside a separator.
    origins: States = frozenset([_BOUNDARY] + [("S", p) for p in auto._prefixes])
    # A run of bytes that occur in no separator lies within one text piece: it must be a
    # substring of the text (a quick filter before the exact check).
    sep_class = re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in sorted(set(b"".join(separators)))) + b"]+")
    out: List[int] = []
    for tid, data in enumerate(table):
        if data is None:
            continue
        if data in text:
            out.append(tid)
            continue
        runs = sep_class.split(data)
        if len(runs) == 1 or not all(r in text for r in runs):
            continue
        if auto.advance(origins, data):
            out.append(tid)
    return tuple(out)


_CANDIDATES: "weakref.WeakKeyDictionary[Any, OrderedDict]" = weakref.WeakKeyDictionary()
_CANDIDATES_PER_TOKENIZER = 256


def candidate_tokens(tokenizer: Any, text: str, separators: Sequence[str], table: Optional[List[Optional[bytes]]] = None) -> Tuple[int, ...]:
    """The token ids that can ever be generated for this text: substrings of the text, or
    tokens that read as separator and text pieces from some state (e.g. " >>>", "o >>>").
    Computed once per (tokenizer, text, separators); the last 256 per tokenizer are cached.
    ``table``: the tokens' bytes (default: ``token_bytes(tokenizer)``, for a transformers
    tokenizer; another engine passes its own, with its vocabulary object as ``tokenizer``).
    """
    if table is None:
        table = token_bytes(tokenizer)
    key = (text.encode("utf-8"), tuple(s.encode("utf-8") for s in separators))
    try:
        cache = _CANDIDATES.setdefault(tokenizer, OrderedDict())
    except TypeError:  # pragma: no cover - not weak-referenceable
        cache = OrderedDict()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    out = _candidates(table, *key)
    cache[key] = out
    while len(cache) > _CANDIDATES_PER_TOKENIZER:
        cache.popitem(last=False)
    return out


class SubstringConstraint:
    """Which token may come next in answers that must stay separators and copies of their texts;
    the same rule for every engine (transformers masks logits with it, llama.cpp picks its
    greedy token with it).

    table (List[Optional[bytes]]): The bytes of every token id (None: a special token).
    texts (Sequence[str]): The input text of each answer.
    separators (Sequence[str]): The separator strings.
    eos_ids (Sequence[int]): The ids that end the answer. EOS is allowed only at a boundary
        (after a complete separator, or as the first token), or when no other token fits.
    eos_in_text (bool): Also allow EOS right after a text piece.
    owner: What ``table`` belongs to (a tokenizer, an engine), for the per-text candidate cache.
    """

    def __init__(
        self,
        table: List[Optional[bytes]],
        texts: Sequence[str],
        separators: Sequence[str],
        eos_ids: Sequence[int],
        *,
        eos_in_text: bool = False,
        owner: Any = None,
    ) -> None:
        if not texts:
            raise ValueError(Errors.E113)
        self.table = table
        self.texts = list(texts)
        self.eos_ids = list(eos_ids)
        self.eos_in_text = eos_in_text
        self._automata = [SubstringAutomaton(t.encode("utf-8"), [s.encode("utf-8") for s in separators]) for t in self.texts]
        self._candidates = [candidate_tokens(owner, t, separators, table) for t in self.texts]
        self._states: List[Dict[Tuple[int, ...], States]] = [{(): a.start} for a in self._automata]
        self._allowed: List[Dict[States, List[int]]] = [{} for _ in self.texts]

    def states(self, index: int, generated: Tuple[int, ...]) -> States:
        """RETURNS (States): The automaton states after the generated tokens (memoized by prefix)."""
        memo = self._states[index]
        if generated in memo:
            return memo[generated]
        prev = self.states(index, generated[:-1])
        data = self.table[generated[-1]] if generated[-1] < len(self.table) else None
        states = self._automata[index].advance(prev, data) if (prev and data) else frozenset()
        memo[generated] = states
        return states

    def allowed(self, index: int, states: States) -> List[int]:
        """RETURNS (List[int]): The token ids allowed next (EOS included when the answer may end)."""
        cache = self._allowed[index]
        if states in cache:
            return cache[states]
        auto = self._automata[index]
        ids = [t for t in self._candidates[index] if auto.advance(states, self.table[t])]  # type: ignore[arg-type]
        if not states or not ids or auto.at_boundary(states) or (self.eos_in_text and auto.in_text(states)):
            ids = ids + self.eos_ids
        cache[states] = ids
        return ids

    def next_ids(self, index: int, generated: Sequence[int]) -> List[int]:
        """RETURNS (List[int]): The token ids allowed after ``generated`` (only EOS once it ended)."""
        done = tuple(int(t) for t in generated)
        eos = set(self.eos_ids)
        if any(t in eos for t in done):
            return self.eos_ids
        return self.allowed(index, self.states(index, done))


class SubstringLogitsProcessor(LogitsProcessor):
    """Masks every next token that would make the answer leave the separator/substring language
    (a ``SubstringConstraint`` over a transformers tokenizer).

    tokenizer: The model's tokenizer.
    texts (Sequence[str]): The input text of each batch row (one text: all rows; with beams or
        several return sequences, rows are mapped to texts in order, ``len(rows) / len(texts)``
        rows per text).
    separators (Sequence[str]): The separator strings.
    eos_token_id: The id(s) that end the answer; default: the tokenizer's EOS.
    eos_in_text (bool): Allow EOS right after a text piece (default: only after a complete
        separator, or before anything was generated).
    prompt_length (Optional[int]): The prompt width; default: the sequence length at the first call.
    """

    def __init__(
        self,
        tokenizer: Any,
        texts: Sequence[str],
        separators: Sequence[str],
        *,
        eos_token_id: Union[None, int, Sequence[int]] = None,
        eos_in_text: bool = False,
        prompt_length: Optional[int] = None,
    ) -> None:
        if not texts:
            raise ValueError(Errors.E113)
        if eos_token_id is None:
            eos_token_id = tokenizer.eos_token_id
        if eos_token_id is None:
            raise ValueError(Errors.E114)
        eos_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        self.constraint = SubstringConstraint(
            token_bytes(tokenizer), texts, separators, eos_ids, eos_in_text=eos_in_text, owner=tokenizer
        )
        self.texts = self.constraint.texts
        self.eos_ids = self.constraint.eos_ids
        self.prompt_length = prompt_length

    def _row_text(self, row: int, n_rows: int) -> int:
        if n_rows % len(self.texts):
            raise ValueError(Errors.E115.format(n_rows=n_rows, n_texts=len(self.texts)))
        return row // (n_rows // len(self.texts))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        n_rows = int(input_ids.shape[0])
        indices = [self._row_text(row, n_rows) for row in range(n_rows)]
        generated = [input_ids[row, self.prompt_length :].tolist() for row in range(n_rows)]
        return self.constrain(indices, generated, scores)

    def constrain(
        self, indices: Sequence[int], generated: Sequence[Sequence[int]], scores: torch.FloatTensor
    ) -> torch.FloatTensor:
        """Mask the next-token ``scores`` (one row per entry of ``indices``): row i continues
        ``generated[i]``, an answer to the text ``self.texts[indices[i]]``."""
        mask = torch.full_like(scores, float("-inf"))
        for row, (index, gen) in enumerate(zip(indices, generated)):
            ids = [t for t in self.constraint.next_ids(index, gen) if t < scores.shape[1]]
            mask[row, ids] = 0.0
        return scores + mask


def substring_processor(
    tokenizer: Any,
    text: Union[str, Sequence[str]],
    separators: Sequence[str],
    *,
    eos_token_id: Union[None, int, Sequence[int]] = None,
    eos_in_text: bool = False,
    prompt_length: Optional[int] = None,
) -> SubstringLogitsProcessor:
    """A LogitsProcessor that keeps the generated text a concatenation of separators and
    substrings of the input text (two text pieces always separated by a separator).

    tokenizer: The model's tokenizer.
    text (Union[str, Sequence[str]]): The input text, or one text per batch row.
    separators (Sequence[str]): The allowed separator strings, e.g.
        ``spacy_el4ner.finetune.format.SEPARATORS`` ("<<< ", " >>>", newline, "<<< >>>").
    eos_token_id: The id(s) that end the answer (default: the tokenizer's EOS). EOS is allowed
        only at a boundary (after a complete separator, or as the first token), or when no other
        token fits.
    eos_in_text (bool): Also allow EOS right after a text piece.
    prompt_length (Optional[int]): The (padded) prompt width; default: taken at the first call.
    RETURNS (SubstringLogitsProcessor): The processor, for one ``generate`` call.
    """
    texts = [text] if isinstance(text, str) else list(text)
    return SubstringLogitsProcessor(
        tokenizer, texts, separators, eos_token_id=eos_token_id, eos_in_text=eos_in_text, prompt_length=prompt_length
    )
