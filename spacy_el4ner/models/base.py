"""What every model backend shares: the response cache, counters, stop strings, loop detection,
chat-template rendering, and the ``generate`` / ``score`` skeleton of the ``Model`` protocol.

A backend subclasses :class:`CachedModel` and implements ``format`` (a prompt as the text the model
reads), ``_generate_uncached`` and ``_score_uncached``; the cache, the argument checks and the
counters stay here, so that every engine answers the same calls in the same way.
"""
import logging
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import Errors, Warnings
from .cache import ResponseCache
from .protocol import Prompt

logger = logging.getLogger("spacy_el4ner")

# A row stops when its newest tokens are one block repeated at least 3 times and over at least
# this many tokens (a small model caught in a loop: '"CBC", "clickbait", "CBC", "clickbait", ...'
# until max_new_tokens), since everything after that is the same block again.
LOOP_TOKENS = 16
LOOP_BLOCK = 32


def looping(ids: Sequence[int]) -> bool:
    """RETURNS (bool): Whether ``ids`` (generated tokens) end with one block of 1 to
    ``LOOP_BLOCK`` tokens repeated at least 3 times, the repeats covering ``LOOP_TOKENS`` or more."""
    n = len(ids)
    for size in range(1, LOOP_BLOCK + 1):
        times = max(3, -(-LOOP_TOKENS // size))
        if times * size > n:
            if 3 * size > n:
                break
            continue
        block = list(ids[n - size :])
        if all(list(ids[n - (k + 1) * size : n - k * size]) == block for k in range(1, times)):
            return True
    return False


def cut_loop(ids: List[int]) -> List[int]:
    """RETURNS: ``ids`` up to the token that first makes them ``looping`` (all of them if none)."""
    for end in range(1, len(ids) + 1):
        if looping(ids[:end]):
            return ids[:end]
    return ids


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """RETURNS (str): ``text`` up to the first stop string (all of it when none occurs)."""
    cut = len(text)
    for s in stop:
        if s:
            pos = text.find(s)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """RETURNS (int): The length of the longest common start of ``a`` and ``b``."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def render_chat(template: str, messages: List[Dict[str, str]], special_tokens: Mapping[str, str]) -> str:
    """Render chat messages with a Jinja chat template exactly as transformers'
    ``apply_chat_template(..., add_generation_prompt=True)`` does (the same sandboxed renderer).

    special_tokens: The template variables transformers passes (``bos_token``, ``eos_token``, ...).
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, _ = render_jinja_template(
        conversations=[messages], chat_template=template, add_generation_prompt=True, **special_tokens
    )
    return texts[0]


def plain_chat(messages: List[Dict[str, str]], answer_prefix: str) -> str:
    """The prompt of a model without a chat template: "Role: text" lines, then "Assistant:"."""
    lines = [m["content"] if m["role"] == "system" else f"{m['role'].title()}: {m['content']}" for m in messages]
    text = "\n\n".join(lines) + "\nAssistant:"
    return text if answer_prefix.startswith(" ") else text + " "


def content_spans(text: str, messages: Sequence[Mapping[str, str]]) -> List[Tuple[int, int]]:
    """Where each message's content lies in the rendered prompt ``text`` (in order; a content that
    the template changed, e.g. trimmed, is found by its trimmed form; one not found is left out).

    A backend tokenises these spans as plain text, never as special tokens, so that a literal
    ``<|im_start|>`` in a document cannot forge a chat turn.
    """
    spans: List[Tuple[int, int]] = []
    pos = 0
    for m in messages:
        content = str(m["content"])
        for form in (content, content.strip()):
            if not form:
                continue
            at = text.find(form, pos)
            if at != -1:
                spans.append((at, at + len(form)))
                pos = at + len(form)
                break
    return spans


class CachedModel:
    """The ``Model`` protocol's skeleton: argument checks, the response cache and counters.

    name (str): The model's name (in cache keys too, with :meth:`cache_name`).
    cache (Optional[ResponseCache]): On-disk cache of answers and scores.
    """

    def __init__(self, name: str, cache: Optional[ResponseCache] = None, adapter: Optional[str] = None) -> None:
        self.name = name
        self.cache = cache
        self.adapter = adapter  # a peft LoRA folder (``spacy.load`` may repoint it at its saved copy)
        self._adapter_ids: Dict[str, Optional[str]] = {}  # adapter folder -> its name in the cache
        self._stats: Dict[str, int] = {
            "calls": 0,
            "forward_passes": 0,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "cache_hits": 0,
            "drafted_tokens": 0,
        }

    @property
    def stats(self) -> Dict[str, int]:
        return dict(self._stats)

    def cache_name(self) -> str:
        """The model's name in response cache keys: whatever changes the answers (engine, weight
        type) is part of it."""
        return self.name

    def cache_adapter(self) -> Optional[str]:
        """RETURNS (Optional[str]): The adapter's name in the response cache keys (None: no adapter;
        by content, see ``ResponseCache.adapter_id``); looked up once per folder."""
        if not self.adapter or self.cache is None:
            return self.adapter
        if self.adapter not in self._adapter_ids:
            self._adapter_ids[self.adapter] = self.cache.adapter_id(self.adapter)
        return self._adapter_ids[self.adapter]

    def format(self, prompt: Prompt, answer_prefix: str = "") -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _generate_uncached(
        self,
        texts: List[str],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]],
        separators: Sequence[str],
    ) -> Iterable[Tuple[int, str]]:  # pragma: no cover - abstract
        """(index into ``texts``, answer cut at the first stop string) pairs, in any order, as
        they are ready (each is cached at once, so an interrupted run keeps what it computed)."""
        raise NotImplementedError

    def _score_uncached(self, texts: List[str], continuations: List[Sequence[str]]) -> List[List[float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        answer_prefix: str = "",
        constrain_to: Optional[Sequence[str]] = None,
        separators: Sequence[str] = (),
    ) -> List[str]:
        """See ``Model.generate``."""
        if constrain_to is not None and len(constrain_to) != len(prompts):
            raise ValueError(Errors.E110.format(n_texts=len(constrain_to), n_prompts=len(prompts)))
        if max_new_tokens < 1:
            raise ValueError(Errors.E003.format(value=max_new_tokens))
        if not prompts:
            return []
        self._stats["calls"] += 1
        texts = [self.format(p, answer_prefix) for p in prompts]
        results: List[Optional[str]] = [None] * len(texts)
        keys: List[Optional[str]] = [None] * len(texts)
        todo: List[int] = []
        for i, text in enumerate(texts):
            if self.cache is not None:
                keys[i] = ResponseCache.key(
                    self.cache_name(), self.cache_adapter(), "gen", text, max_new_tokens, list(stop),
                    None if constrain_to is None else [constrain_to[i], list(separators)],
                )
                hit = self.cache.get(keys[i])
                if hit is not None:
                    results[i] = hit
                    self._stats["cache_hits"] += 1
                    continue
            todo.append(i)
        if todo:
            rows = None if constrain_to is None else [constrain_to[i] for i in todo]
            for k, out in self._generate_uncached([texts[i] for i in todo], max_new_tokens, stop, rows, separators):
                i = todo[k]
                results[i] = out
                if self.cache is not None and keys[i] is not None:
                    self.cache.set(keys[i], out)
        return [r if r is not None else "" for r in results]

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[Sequence[str]]) -> List[List[float]]:
        """See ``Model.score``."""
        if len(prompts) != len(continuations):
            raise ValueError(Errors.E111.format(n_lists=len(continuations), n_prompts=len(prompts)))
        if not prompts:
            return []
        self._stats["calls"] += 1
        results: List[Optional[List[float]]] = [None] * len(prompts)
        keys: List[Optional[str]] = [None] * len(prompts)
        todo: List[int] = []
        texts: List[str] = []
        for n, (prompt, conts) in enumerate(zip(prompts, continuations)):
            text = self.format(prompt)
            texts.append(text)
            if self.cache is not None:
                keys[n] = ResponseCache.key(self.cache_name(), self.cache_adapter(), "score", text, list(conts))
                hit = self.cache.get(keys[n])  # type: ignore[arg-type]
                if hit is not None:
                    self._stats["cache_hits"] += 1
                    results[n] = [float(x) for x in hit]
                    continue
            if not conts:
                results[n] = []
                continue
            todo.append(n)
        if todo:
            computed = self._score_uncached([texts[n] for n in todo], [continuations[n] for n in todo])
            for n, scores in zip(todo, computed):
                results[n] = scores
                if self.cache is not None and keys[n] is not None:
                    self.cache.set(keys[n], scores)  # type: ignore[arg-type]
        return [r if r is not None else [] for r in results]


class Rendered(str):
    """A rendered prompt that remembers its pieces: (text, is_template). Template text may hold
    control tokens (``<|im_start|>``); message contents are tokenised as plain text only."""

    pieces: Tuple[Tuple[str, bool], ...] = ()


def rendered(pieces: Sequence[Tuple[str, bool]]) -> Rendered:
    """RETURNS (Rendered): The prompt text made of ``pieces``, which it keeps."""
    out = Rendered("".join(text for text, _ in pieces))
    out.pieces = tuple((text, kind) for text, kind in pieces if text)
    return out


def render_pieces(
    render: Callable[[List[Dict[str, str]]], str], messages: List[Dict[str, str]], answer_prefix: str = ""
) -> Rendered:
    """Render ``messages`` (+ ``answer_prefix``, template text) and keep which pieces are the
    messages' contents, so that a backend tokenises them as plain text only.

    The template's own text is found by rendering it once more with a marker for each content;
    the real rendering must then be that text with each content (or, for templates that trim,
    its stripped form) in the markers' places, checked piece by piece: a document that holds
    template text (``<|im_end|>...``) cannot move the boundary. A template that changes contents
    otherwise falls back to finding them in order (``content_spans``).
    """
    text = render(messages)
    marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
    marked = render([{"role": m["role"], "content": mark} for m, mark in zip(messages, marks)])
    template: List[str] = []
    pos = 0
    for mark in marks:
        at = marked.find(mark, pos)
        if at < 0:
            break
        template.append(marked[pos:at])
        pos = at + len(mark)
    pieces = _fit(text, template + [marked[pos:]], [str(m["content"]) for m in messages]) if len(template) == len(marks) else None
    if pieces is None:
        pieces = piece_kinds(text, content_spans(text, messages))
    return rendered(pieces + [(answer_prefix, True)])


def _fit(text: str, template: List[str], contents: List[str]) -> Optional[List[Tuple[str, bool]]]:
    """``text`` as template[0] content[0] template[1] ... template[-1], each content as given or
    stripped; None when it is not."""
    pieces: List[Tuple[str, bool]] = []
    pos = 0
    for i, content in enumerate(contents):
        if not text.startswith(template[i], pos):
            return None
        pos += len(template[i])
        pieces.append((template[i], True))
        for form in dict.fromkeys((content, content.strip())):
            nxt = pos + len(form)
            if text.startswith(form, pos) and (text.startswith(template[i + 1], nxt) if i + 1 < len(contents) else text[nxt:] == template[-1]):
                pieces.append((form, False))
                pos = nxt
                break
        else:
            return None
    if text[pos:] != template[-1]:
        return None
    pieces.append((template[-1], True))
    return pieces


def encode_isolated(text: str, tokenize: Callable[[str, bool, bool], List[int]]) -> List[int]:
    """Token ids of a rendered prompt in which no message content becomes a control token.

    tokenize(text, special, first): ids of ``text``; ``special``: whether control-token texts
    (``<|im_start|>``) become those tokens; ``first``: whether ``text`` starts the prompt.
    The whole text is tokenised at once (exactly as before) unless a content holds control-token
    text; then piece by piece, contents as plain text.
    """
    pieces = getattr(text, "pieces", None)
    contents = [piece for piece, is_template in pieces or () if not is_template]
    if all(tokenize(c, True, False) == tokenize(c, False, False) for c in contents):
        return tokenize(str(text), True, True)
    logger.warning(Warnings.W001)
    return [t for n, (piece, is_template) in enumerate(pieces or ()) for t in tokenize(piece, is_template, n == 0)]


def piece_kinds(text: str, spans: Sequence[Tuple[int, int]]) -> List[Tuple[str, bool]]:
    """Cut ``text`` into (piece, is_template) pieces: the ``spans`` (message contents) are not
    template, the text between them is."""
    pieces: List[Tuple[str, bool]] = []
    pos = 0
    for start, end in spans:
        if start > pos:
            pieces.append((text[pos:start], True))
        if end > start:
            pieces.append((text[start:end], False))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], True))
    return pieces


def fit_prompt(ids: List[int], limit: int, name: str) -> List[int]:
    """A prompt of at most ``limit`` tokens that keeps its start (the instruction) and its end (the
    text to annotate and the start of the answer): what goes is the middle, the demonstrations.
    Never the instruction, as a cut from the left would."""
    if len(ids) <= limit:
        return ids
    head = min(len(ids) // 4, limit // 4)
    logger.warning(Warnings.W002.format(name=name, n=len(ids), limit=limit, head=head, tail=limit - head))
    return ids[:head] + ids[len(ids) - (limit - head):]


def warn_unconstrained(model: Any, constrain_to: Optional[Sequence[str]]) -> None:
    """Say once per model that constrained extraction is not applied on its engine."""
    if constrain_to is not None and not getattr(model, "_warned_unconstrained", False):
        model._warned_unconstrained = True
        logger.warning(Warnings.W003.format(name=model.name, engine=type(model).__name__))


def check_positive(**values: Any) -> None:
    """Raise ValueError for a setting that must be a positive integer and is not."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(Errors.E001.format(key=key, value=value))
