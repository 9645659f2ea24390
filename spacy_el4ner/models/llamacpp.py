"""Model backend over llama.cpp (the ``llama-cpp-python`` bindings): GGUF files read directly.

The members ship as GGUF, llama.cpp's own format, so nothing is converted: the quantised weights
run as they are (Qwen2.5-Coder-1.5B on llama.cpp costs about what the 0.5B costs on transformers).

One llama.cpp context per model holds several sequences over one shared (unified) key/value
cache, so that prompts that begin alike share the cells of their common start:

- sequence 0 keeps the common prefix of the last group of prompts (an instruction and its
  demonstrations), reused by the next group as far as it matches;
- sequences ``1..parallel`` hold one prompt each, decoded side by side, one token per step for
  every unfinished answer in one ``llama_decode`` call (greedy);
- the remaining sequences score continuations of more than one token, all in one call.

Install: ``pip install 'spacy-el4ner[llama]'`` (llama-cpp-python compiles from source where no
wheel fits: cmake and a C++ compiler, a few minutes).
"""
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import Errors
from . import zoo
from .base import (
    CachedModel,
    Rendered,
    check_positive,
    common_prefix,
    cut_at_stop,
    encode_isolated,
    fit_prompt,
    looping,
    plain_chat,
    render_chat,
    render_pieces,
)
from .cache import ResponseCache
from .llama_engine import Engine, default_threads
from .protocol import ModelLoadError, Prompt, as_messages

if TYPE_CHECKING:
    from .constrained import SubstringConstraint

logger = logging.getLogger("spacy_el4ner")

# A prompt joins a group when that shortens the group's shared prefix by at most this many
# tokens per prompt already in it (the spans of one sentence share its whole prompt but the
# span; two sentences share only the instruction).
_JOIN_TOKENS = 32
_SCRATCH = 32  # sequences for multi-token continuations, per decode call
# One engine (weights + context) per GGUF file and settings, whatever the number of members or
# pipelines naming it.
_ENGINES: Dict[Tuple[Any, ...], "Engine"] = {}
_ENGINES_LOCK = threading.Lock()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = float(logits.max())
    return logits - (top + float(np.log(np.exp(logits - top).sum())))


class LlamaCppModel(CachedModel):
    """A causal LM on llama.cpp, from an embedded name (its GGUF file as the package ships it,
    sha256-checked, no conversion) or a local ``.gguf`` file.

    name (str): Embedded short name (``python -m spacy_el4ner models list``) or a .gguf path.
    n_ctx (int): Key/value cache size in tokens, shared by the ``parallel`` prompts decoded together
        (a common prefix is held once); the longest prompt + answer must fit.
    n_batch (int): Most tokens per ``llama_decode`` call.
    n_threads (Optional[int]): CPU threads (None: the cores this process may use).
    parallel (int): Prompts decoded side by side (greedy generation), and prompts scored together.
    cache (Optional[ResponseCache]): On-disk cache of responses.
    adapter (Optional[str]): Folder of a peft LoRA adapter (``finetune``'s output) to apply, converted
        once to a llama.cpp LoRA GGUF (``lora_gguf.py``).
    """

    def __init__(
        self,
        name: str,
        *,
        n_ctx: int = 8192,
        n_batch: int = 512,
        n_threads: Optional[int] = None,
        parallel: int = 8,
        cache: Optional[ResponseCache] = None,
        adapter: Optional[str] = None,
    ) -> None:
        check_positive(n_ctx=n_ctx, n_batch=n_batch, parallel=parallel)
        if n_threads is not None:
            check_positive(n_threads=n_threads)
        if n_ctx < 256:
            raise ValueError(Errors.E004.format(value=n_ctx))
        _check_source(name)
        super().__init__(name, cache, adapter)
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_threads = n_threads
        self.parallel = parallel
        self._engine: Optional[Engine] = None
        self._template: Optional[str] = None
        self._specials: Dict[str, str] = {}

    def __repr__(self) -> str:
        extra = f", adapter={self.adapter!r}" if self.adapter else ""
        return f"LlamaCppModel({self.name!r}{extra}, loaded={self._engine is not None})"

    def cache_name(self) -> str:
        return f"{self.name}|llama.cpp"

    # -- loading ---------------------------------------------------------------------------
    def gguf_file(self) -> Path:
        return zoo.gguf_path(self.name) if self.name in zoo.ZOO else Path(self.name).expanduser()

    def load(self) -> None:
        """Load the GGUF file and make the context (idempotent; shared per process)."""
        if self._engine is not None:
            return
        path = self.gguf_file()
        threads = self.n_threads or default_threads()
        lora = None
        if self.adapter:
            from .lora_gguf import lora_gguf

            lora = lora_gguf(self.adapter, path, zoo.cache_root() / "lora")
        key = (str(path.resolve()), self.n_ctx, self.n_batch, threads, self.parallel, str(lora))
        with _ENGINES_LOCK:
            if key not in _ENGINES:
                _ENGINES[key] = Engine(path, self.n_ctx, self.n_batch, threads, 1 + self.parallel + _SCRATCH, lora)
                logger.info("Loaded %s on llama.cpp from %s (%d threads)", self.name, path, threads)
            engine = _ENGINES[key]
        self._template = engine.meta("tokenizer.chat_template")
        self._specials = {}
        for key_name, getter in (("bos_token", "llama_vocab_bos"), ("eos_token", "llama_vocab_eos")):
            tok = getattr(engine.L, getter)(engine.vocab)
            if tok is not None and tok >= 0:
                self._specials[key_name] = engine.token_text(tok)
        self._engine = engine

    @property
    def engine(self) -> Engine:
        self.load()
        assert self._engine is not None
        return self._engine

    # -- prompting -------------------------------------------------------------------------
    def format(self, prompt: Prompt, answer_prefix: str = "") -> Rendered:
        """Render a prompt with the chat template of the GGUF file (as transformers renders it),
        else as plain "Role: text" lines; the result keeps which pieces are message contents."""
        self.load()
        template = self._template
        if template:
            return render_pieces(lambda m: render_chat(template, m, self._specials), as_messages(prompt), answer_prefix)
        return render_pieces(lambda m: plain_chat(m, answer_prefix), as_messages(prompt), answer_prefix)

    def encode(self, text: str, reserve: int = 0) -> List[int]:
        """Token ids of a rendered prompt: the template's control tokens as such, the messages'
        contents as plain text (a document cannot forge a chat turn)."""
        engine = self.engine
        plain = not self._template  # as transformers: BOS only where no chat template writes it
        ids = encode_isolated(text, lambda piece, special, first: engine.tokenize(piece, special, first and plain))
        return fit_prompt(ids, max(16, engine.n_ctx - reserve), self.name)

    # -- generation ------------------------------------------------------------------------
    def _generate_uncached(
        self,
        texts: List[str],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]],
        separators: Sequence[str],
    ) -> Iterator[Tuple[int, str]]:
        """Greedy answers, ``parallel`` prompts at a time, one ``llama_decode`` call per step for
        all unfinished answers. With ``constrain_to`` each answer may only be made of
        ``separators`` and copies of its text: the same rule, on the same bytes, as on
        transformers (``constrained.SubstringConstraint``)."""
        engine = self.engine
        with engine.lock:
            encoded = [self.encode(t, max_new_tokens) for t in texts]
            constraint = None
            if constrain_to is not None:
                from .constrained import SubstringConstraint

                constraint = SubstringConstraint(
                    engine.token_table(), constrain_to, separators, engine.end_tokens(), owner=engine
                )
            for group in self._groups(encoded, [max_new_tokens] * len(texts), join_tokens=None):
                answers = self._generate_group([encoded[i] for i in group], max_new_tokens, stop, constraint, group)
                yield from zip(group, answers)

    def _groups(self, encoded: List[List[int]], extra: List[int], join_tokens: Optional[int] = _JOIN_TOKENS) -> Iterator[List[int]]:
        """Consecutive prompts that go through the context together: at most ``parallel``, while
        they fit in the cache (``extra``: cells each needs beyond its prompt) and, unless
        ``join_tokens`` is None, share a long prefix. Generation groups any prompts (each step
        decodes one token of every answer in one call, whatever they share); scoring groups only
        prompts whose shared prefix is worth computing once."""
        engine = self._engine
        assert engine is not None
        group: List[int] = []
        common = 0
        for i, ids in enumerate(encoded):
            if group:
                lcp = min(common, common_prefix(encoded[group[0]], ids), len(ids) - 1)
                cells = lcp + sum(len(encoded[j]) - lcp + extra[j] for j in group + [i])
                shares = join_tokens is None or (common - lcp) * len(group) <= join_tokens
                if len(group) < self.parallel and shares and cells <= engine.n_ctx:
                    group.append(i)
                    common = lcp
                    continue
                yield group
            group, common = [i], len(ids) - 1
        if group:
            yield group

    def _start(self, prompts: List[List[int]]) -> Dict[int, np.ndarray]:
        """Put the group's common prefix in sequence 0 and each prompt's rest in sequence 1 + its
        index. RETURNS: prompt index -> the logits after its last token."""
        engine = self._engine
        assert engine is not None
        shared = min(min(common_prefix(prompts[0], p) for p in prompts), min(len(p) for p in prompts) - 1)
        self._stats["prompt_tokens"] += engine.keep_prefix(prompts[0][:shared])
        items: List[Tuple[int, int, int, bool]] = []
        last: Dict[int, int] = {}
        for n, ids in enumerate(prompts):
            engine.drop(1 + n)
            engine.copy(0, 1 + n)
            for pos in range(shared, len(ids)):
                items.append((ids[pos], pos, 1 + n, pos == len(ids) - 1))
            last[len(items) - 1] = n
        self._stats["prompt_tokens"] += len(items)
        before = engine.passes
        out = engine.decode(items)
        self._stats["forward_passes"] += engine.passes - before
        return {last[i]: row for i, row in out.items()}

    def _generate_group(
        self,
        prompts: List[List[int]],
        max_new_tokens: int,
        stop: Sequence[str],
        constraint: Optional["SubstringConstraint"] = None,
        texts: Sequence[int] = (),
    ) -> List[str]:
        """Greedy answers to ``prompts``; under ``constraint`` the answer to prompt n may only
        continue as ``constraint.next_ids(texts[n], ...)`` allows."""
        engine = self._engine
        assert engine is not None
        logits = self._start(prompts)
        answers: List[List[int]] = [[] for _ in prompts]
        active = list(range(len(prompts)))
        try:
            while active:
                step: List[Tuple[int, int, int, bool]] = []
                rows: List[int] = []
                for n in active:
                    if constraint is None:
                        token = int(np.argmax(logits[n]))
                    else:
                        ids = np.asarray(constraint.next_ids(texts[n], answers[n]), dtype=np.int64)
                        token = int(ids[np.argmax(logits[n][ids])])
                    if engine.is_end(token):
                        continue
                    answers[n].append(token)
                    if len(answers[n]) >= max_new_tokens or looping(answers[n]):
                        continue
                    if stop and cut_at_stop(engine.text(answers[n]), stop) != engine.text(answers[n]):
                        continue
                    step.append((token, len(prompts[n]) + len(answers[n]) - 1, 1 + n, True))
                    rows.append(n)
                active = rows
                if step:
                    before = engine.passes
                    out = engine.decode(step)
                    self._stats["forward_passes"] += engine.passes - before
                    logits = {rows[i]: row for i, row in out.items()}
        finally:
            for n in range(len(prompts)):
                engine.drop(1 + n)
        self._stats["generated_tokens"] += sum(len(a) for a in answers)
        return [cut_at_stop(engine.text(a), stop) for a in answers]

    # -- scoring ---------------------------------------------------------------------------
    def continuation_ids(self, conts: Sequence[str]) -> List[List[int]]:
        ids = [self.engine.tokenize(c, special=False) for c in conts]
        for c, i in zip(conts, ids):
            if not i:
                raise ValueError(Errors.E109.format(value=c))
        return ids

    def _score_uncached(self, texts: List[str], continuations: List[Sequence[str]]) -> List[List[float]]:
        """Prompts that share a prefix are scored together: the prefix once (kept for the next
        call as far as it matches), each prompt's rest side by side, the first token of every
        continuation read off its prompt's last logits, and the rest of all longer continuations
        in one more call."""
        engine = self.engine
        with engine.lock:
            conts = [self.continuation_ids(c) for c in continuations]
            encoded = [self.encode(t, max(len(c) for c in cs)) for t, cs in zip(texts, conts)]
            extra = [sum(len(c) - 1 for c in cs) for cs in conts]
            out: List[List[float]] = [[] for _ in texts]
            for group in self._groups(encoded, extra):
                scores = self._score_group([encoded[i] for i in group], [conts[i] for i in group])
                for i, s in zip(group, scores):
                    out[i] = s
            return out

    def _score_group(self, prompts: List[List[int]], conts: List[List[List[int]]]) -> List[List[float]]:
        engine = self._engine
        assert engine is not None
        try:
            logits = self._start(prompts)
            scores: List[List[float]] = []
            longer: List[Tuple[int, int]] = []  # (prompt, continuation) with more than one token
            for n, cs in enumerate(conts):
                first = _log_softmax(logits[n])
                scores.append([float(first[c[0]]) for c in cs])
                longer.extend((n, k) for k, c in enumerate(cs) if len(c) > 1)
            base = 1 + self.parallel
            for start in range(0, len(longer), _SCRATCH):
                chunk = longer[start : start + _SCRATCH]
                items: List[Tuple[int, int, int, bool]] = []
                for s, (n, k) in enumerate(chunk):
                    engine.drop(base + s)
                    engine.copy(1 + n, base + s)
                    c = conts[n][k]
                    items.extend((t, len(prompts[n]) + j, base + s, True) for j, t in enumerate(c[:-1]))
                before = engine.passes
                rows = engine.decode(items)
                self._stats["forward_passes"] += engine.passes - before
                self._stats["prompt_tokens"] += len(items)
                at = 0
                for s, (n, k) in enumerate(chunk):
                    c = conts[n][k]
                    for j in range(len(c) - 1):
                        scores[n][k] += float(_log_softmax(rows[at + j])[c[j + 1]])
                    at += len(c) - 1
                    engine.drop(base + s)
            return scores
        finally:
            for n in range(len(prompts)):
                engine.drop(1 + n)


def _check_source(name: str) -> None:
    """Fail at construction for a name that is neither an embedded GGUF model nor a .gguf file."""
    if name in zoo.ZOO:
        if zoo.ZOO[name].kind != "gguf":
            raise ModelLoadError(Errors.E103.format(name=name, role=zoo.ZOO[name].role))
        return
    path = Path(name).expanduser()
    if path.is_file():
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelLoadError(Errors.E104.format(path=path))
        return
    import difflib

    known = sorted(n for n, s in zoo.ZOO.items() if s.kind == "gguf")
    near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    raise ModelLoadError(Errors.E102.format(name=name, known=", ".join(known), hint=hint))
