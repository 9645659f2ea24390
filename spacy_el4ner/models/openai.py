"""Model backend over any OpenAI-compatible completions server: vLLM (GPUs, several nodes),
llama-cpp-python's server, or a hosted API. The members run there; many spaCy processes share them.

Prompts are rendered here, with the chat template of the model (``template_from``: an embedded
name, a .gguf file or a transformers folder), and sent to ``/completions`` as text, so that every
engine reads the same prompt and the answer can be forced to begin with ``answer_prefix``.
Scoring needs the log-probability of each token of a given continuation: ``scoring = "echo"``
(the OpenAI way: ``echo`` + ``logprobs``) or ``"prompt_logprobs"`` (vLLM's ``prompt_logprobs``).
"""
import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import Errors
from . import zoo
from .base import CachedModel, warn_unconstrained, check_positive, cut_at_stop, plain_chat, render_chat
from .cache import ResponseCache
from .protocol import ModelLoadError, Prompt, as_messages

logger = logging.getLogger("spacy_el4ner")

SCORING = ("echo", "prompt_logprobs")
_RETRY_STATUS = (408, 429, 500, 502, 503, 504)


class ServerError(RuntimeError):
    """A completions server refused a request or could not be reached; the message says why."""


def chat_template_of(source: str) -> Tuple[Optional[str], Dict[str, str]]:
    """The chat template and special-token texts of a model, read from an embedded name's GGUF
    file, a .gguf file, or a transformers folder (``tokenizer_config.json``).

    RETURNS: (template or None, {"bos_token": ..., "eos_token": ...}).
    """
    path = zoo.gguf_path(source) if source in zoo.ZOO and zoo.ZOO[source].kind == "gguf" else Path(source).expanduser()
    if path.is_dir():
        config_file = path / "tokenizer_config.json"
        if not config_file.is_file():
            raise ModelLoadError(Errors.E207.format(path=path))
        config = json.loads(config_file.read_text(encoding="utf8"))
        specials = {k: _token_text(config.get(k)) for k in ("bos_token", "eos_token") if config.get(k)}
        template = config.get("chat_template")
        if template is None and (path / "chat_template.jinja").is_file():  # transformers >= 4.50 writes it apart
            template = (path / "chat_template.jinja").read_text(encoding="utf8")
        return template, specials
    if not path.is_file():
        raise ModelLoadError(Errors.E208.format(source=source))
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def value(key: str) -> Any:
        field = fields.get(key)
        return None if field is None else field.contents()

    tokens = fields.get("tokenizer.ggml.tokens")
    specials = {}
    for key, name in (("bos_token", "tokenizer.ggml.bos_token_id"), ("eos_token", "tokenizer.ggml.eos_token_id")):
        token_id = value(name)
        if tokens is not None and token_id is not None:
            specials[key] = str(tokens.contents(int(token_id)))
    return value("tokenizer.chat_template"), specials


def _token_text(token: Any) -> str:
    return str(token.get("content", "")) if isinstance(token, dict) else str(token)


class OpenAIModel(CachedModel):
    """A model served by an OpenAI-compatible server (``/v1/completions``).

    model (str): The model's name on the server.
    base_url (str): The server's API root, e.g. "http://127.0.0.1:8000/v1".
    api_key_env (Optional[str]): The *name* of the environment variable that holds the API key
        (never the key itself); None: no key is sent.
    template_from (Optional[str]): Where the chat template comes from (embedded name, .gguf file or
        transformers folder); None: plain "Role: text" prompts (a base model).
    scoring (str): "echo" (echo + logprobs; OpenAI, vLLM) or "prompt_logprobs" (vLLM).
    timeout (float): Seconds per request.
    max_retries (int): Retries of a request that timed out, could not connect, or got 408, 429 or
        5xx, with exponential backoff from ``backoff`` seconds (or the server's Retry-After).
    concurrency (int): Requests in flight at once.
    extra_body (Dict[str, Any]): More fields for every request, for a server's own sampling settings
        (llama-cpp-python's server applies ``repeat_penalty = 1.1`` unless sent ``{"repeat_penalty": 1.0}``,
        which greedy decoding as the local engines do it needs).
    cache (Optional[ResponseCache]): On-disk cache of responses.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: Optional[str] = None,
        template_from: Optional[str] = None,
        scoring: str = "echo",
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 4,
        extra_body: Optional[Dict[str, Any]] = None,
        cache: Optional[ResponseCache] = None,
    ) -> None:
        if scoring not in SCORING:
            raise ValueError(Errors.E005.format(options=SCORING, value=scoring))
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(Errors.E006.format(value=base_url))
        check_positive(concurrency=concurrency)
        if max_retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError(Errors.E007)
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise ValueError(Errors.E008.format(name=api_key_env))
        super().__init__(model, cache)
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.template_from = template_from
        self.scoring = scoring
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        self._template: Optional[Tuple[Optional[str], Dict[str, str]]] = None

    def __repr__(self) -> str:
        return f"OpenAIModel({self.name!r}, base_url={self.base_url!r})"

    def cache_name(self) -> str:
        extra = json.dumps(self.extra_body, sort_keys=True) if self.extra_body else ""
        return f"openai:{self.name}{extra}"

    # -- prompting -------------------------------------------------------------------------
    def format(self, prompt: Prompt, answer_prefix: str = "") -> str:
        if self._template is None:
            self._template = chat_template_of(self.template_from) if self.template_from else (None, {})
        template, specials = self._template
        messages = as_messages(prompt)
        if template:
            return render_chat(template, messages, specials) + answer_prefix
        return plain_chat(messages, answer_prefix) + answer_prefix

    # -- HTTP ------------------------------------------------------------------------------
    def _post(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """POST ``body`` to ``/completions``, retrying what may pass. RETURNS: the JSON answer."""
        data = json.dumps({"model": self.name, **self.extra_body, **body}, ensure_ascii=False).encode("utf-8", "replace")
        headers = {"Content-Type": "application/json"}
        if self.api_key_env is not None:
            headers["Authorization"] = f"Bearer {os.environ.get(self.api_key_env, '')}"
        url = f"{self.base_url}/completions"
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * (2**attempt)
            try:
                request = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8", "replace"))
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")[:500]
                if err.code in (401, 403):
                    raise ServerError(Errors.E201.format(url=url, code=err.code, env=self.api_key_env, detail=detail)) from err
                if err.code not in _RETRY_STATUS or attempt == self.max_retries:
                    raise ServerError(Errors.E202.format(url=url, code=err.code, detail=detail)) from err
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if retry_after and retry_after.isdigit():
                    wait = min(float(retry_after), 60.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.max_retries:
                    raise ServerError(Errors.E203.format(url=url, tries=attempt + 1, err=err)) from err
            except json.JSONDecodeError as err:
                raise ServerError(Errors.E204.format(url=url, err=err)) from err
            logger.info("%s: retrying in %.1f s (try %d of %d)", url, wait, attempt + 2, self.max_retries + 1)
            time.sleep(wait)
        raise AssertionError  # pragma: no cover (unreachable: the last try returns or raises)

    def _count(self, answer: Dict[str, Any]) -> None:
        usage = answer.get("usage") or {}
        self._stats["forward_passes"] += 1
        self._stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        self._stats["generated_tokens"] += int(usage.get("completion_tokens") or 0)

    # -- the Model protocol ----------------------------------------------------------------
    def _generate_uncached(
        self,
        texts: List[str],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]],
        separators: Sequence[str],
    ) -> Iterator[Tuple[int, str]]:
        """One greedy completion request per prompt, ``concurrency`` at a time (``constrain_to``
        is not applied on a server)."""
        warn_unconstrained(self, constrain_to)
        body: Dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": 0.0}
        if stop:
            body["stop"] = [s for s in stop if s]

        def ask(text: str) -> str:
            answer = self._post({**body, "prompt": text})
            self._count(answer)
            try:
                return cut_at_stop(str(answer["choices"][0]["text"]), stop)
            except (KeyError, IndexError, TypeError) as err:
                raise ServerError(Errors.E205.format(url=self.base_url, answer=str(answer)[:300])) from err

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            yield from enumerate(pool.map(ask, texts))

    def _score_uncached(self, texts: List[str], continuations: List[Sequence[str]]) -> List[List[float]]:
        """One request per prompt, ``concurrency`` at a time: its continuations go as a list of
        prompts (the OpenAI API's ``prompt`` array), which the server scores as one batch."""
        for conts in continuations:
            for cont in conts:
                if not cont:
                    raise ValueError(Errors.E109.format(value=cont))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda job: self._score_prompt(*job), zip(texts, continuations)))

    def _score_prompt(self, text: str, conts: Sequence[str]) -> List[float]:
        """The summed log-probability of the tokens of each of ``conts`` after ``text``."""
        if not conts:
            return []
        body: Dict[str, Any] = {"prompt": [text + cont for cont in conts], "max_tokens": 1, "temperature": 0.0}
        if self.scoring == "echo":
            body.update(echo=True, logprobs=0)
        else:
            body.update(prompt_logprobs=0)
        try:
            answer = self._post(body)
        except ServerError as err:
            if len(conts) == 1:
                raise
            raise ServerError(Errors.E215.format(err=str(err).rstrip("."), m=len(conts))) from err
        self._count(answer)
        try:
            choices = sorted(answer["choices"], key=lambda c: int(c.get("index", 0)))
            if len(choices) != len(conts):
                raise ValueError(Errors.E214.format(n=len(choices), m=len(conts)))
            if self.scoring == "echo":
                aligned = self._echo_tokens(choices, answer.get("usage") or {})
            else:
                # one prompt: some servers put prompt_logprobs beside the choices
                alone = answer.get("prompt_logprobs") if len(conts) == 1 else None
                aligned = [
                    _prompt_logprob_tokens(c.get("prompt_logprobs") or alone, len(text) + len(cont))
                    for c, cont in zip(choices, conts)
                ]
            return [_sum_from(tokens, logps, len(text), len(text) + len(cont)) for (tokens, logps), cont in zip(aligned, conts)]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ServerError(Errors.E206.format(url=self.base_url, err=err, scoring=self.scoring)) from err

    def _echo_tokens(self, choices: List[Dict[str, Any]], usage: Dict[str, Any]) -> List[Tuple[List[str], List[Optional[float]]]]:
        """Each choice's echoed tokens (their texts, or spans of the right length from
        ``text_offset``) and log-probabilities; their count must be the request's tokens."""
        aligned = []
        for choice in choices:
            logprobs = choice["logprobs"]
            tokens = [str(t) for t in logprobs["tokens"]]
            offsets = logprobs.get("text_offset")
            if isinstance(offsets, list) and len(offsets) == len(tokens) and offsets and offsets[0] == 0:
                # spans between offsets: exact even where a token's text is a partial character
                ends = list(offsets[1:]) + [offsets[-1] + len(tokens[-1])]
                tokens = ["x" * max(0, b - a) for a, b in zip(offsets, ends)]
            aligned.append((tokens, logprobs["token_logprobs"]))
        expected = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
        n = sum(len(tokens) for tokens, _ in aligned)
        if usage and n != expected:
            raise ValueError(Errors.E209.format(n=n, expected=expected))
        return aligned


def _prompt_logprob_tokens(entries: Any, prompt_len: int) -> Tuple[List[str], List[Optional[float]]]:
    """vLLM's ``prompt_logprobs``: per prompt token, None (the first) or {token_id: {logprob,
    decoded_token, rank}} holding the actual token (and the top ones when asked). The first token's
    text is not given: it stands for what the others leave of the ``prompt_len`` characters, so the
    offsets are anchored at the end of the prompt, where the continuation is."""
    if not isinstance(entries, list):
        raise ValueError(Errors.E210)
    tokens: List[str] = []
    logps: List[Optional[float]] = []
    for entry in entries:
        if entry is None:
            tokens.append("")
            logps.append(None)
            continue
        if len(entry) != 1:
            raise ValueError(Errors.E211)
        actual = next(iter(entry.values()))
        tokens.append(str(actual.get("decoded_token", "")))
        logps.append(float(actual["logprob"]))
    if tokens:
        tokens[0] = "x" * max(0, prompt_len - sum(len(t) for t in tokens[1:]))
    return tokens, logps


def _sum_from(tokens: Sequence[str], logps: Sequence[Optional[float]], start: int, end: int) -> float:
    """Sum the log-probabilities of the tokens that overlap characters [start, end) of the prompt,
    given the tokens' texts in order (their offsets are their running lengths)."""
    total = 0.0
    pos = 0
    found = False
    for token, logp in zip(tokens, logps):
        nxt = pos + len(token)
        if nxt > start and pos < end:
            if logp is None:
                raise ValueError(Errors.E212)
            total += float(logp)
            found = True
        pos = nxt
        if pos >= end:
            break
    if not found:
        raise ValueError(Errors.E213)
    return total
