"""llama.cpp itself, through the low-level API of ``llama-cpp-python`` (which mirrors ``llama.h``):
one GGUF model and one context whose sequences share a unified key/value cache. The prompting,
grouping and scoring around it live in ``llamacpp.py``.
"""
import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import Errors
from .base import common_prefix
from .protocol import ModelLoadError

logger = logging.getLogger("spacy_el4ner")


def _llama() -> Any:
    try:
        import llama_cpp
    except ImportError as err:
        raise ModelLoadError(Errors.E108) from err
    if not logger.isEnabledFor(logging.DEBUG):
        # llama.cpp's own log (load chatter and warnings about the shipped files; its level
        # numbers map onto logging's unevenly): silent unless this package logs at DEBUG
        logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL + 10)
    return llama_cpp


def default_threads() -> int:
    """RETURNS (int): The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Engine:
    """A GGUF model and one llama.cpp context with ``n_seq`` sequences on a unified KV cache.

    Not thread-safe on its own: :class:`LlamaCppModel` holds ``lock`` around each call.
    """

    def __init__(self, path: Path, n_ctx: int, n_batch: int, n_threads: int, n_seq: int, lora: Optional[Path] = None) -> None:
        L = _llama()
        L.llama_backend_init()
        self.L = L
        self.path = path
        mparams = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
        if not self.model:
            raise ModelLoadError(Errors.E105.format(path=path))
        self.vocab = L.llama_model_get_vocab(self.model)
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_seq
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.kv_unified = True  # sequences share the cells of a common prefix
        cparams.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise ModelLoadError(Errors.E106.format(n_ctx=n_ctx, path=path))
        if lora is not None:
            adapter = L.llama_adapter_lora_init(self.model, str(lora).encode("utf-8"))
            if not adapter:
                L.llama_free(self.ctx)
                L.llama_model_free(self.model)
                raise ModelLoadError(Errors.E144.format(path=lora, base=path.name))
            # freed with the model; applied to every sequence of this context
            L.llama_set_adapters_lora(self.ctx, (L.llama_adapter_lora_p_ctypes * 1)(adapter), 1, (ctypes.c_float * 1)(1.0))
        self.memory = L.llama_get_memory(self.ctx)
        self.n_ctx = L.llama_n_ctx(self.ctx)
        self.n_batch = n_batch
        self.n_seq = n_seq
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.kept: List[int] = []  # the tokens sequence 0 holds
        self.lock = threading.Lock()
        self.passes = 0
        self._table: Optional[List[Optional[bytes]]] = None
        self._ends: Optional[List[int]] = None

    # -- vocabulary --------------------------------------------------------------------------
    def meta(self, key: str) -> Optional[str]:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.L.llama_model_meta_val_str(self.model, key.encode("utf-8"), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    def token_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", "replace")

    def tokenize(self, text: str, special: bool, add_bos: bool = False) -> List[int]:
        """Token ids of ``text``; ``special``: whether control-token texts such as
        ``<|im_start|>`` become those tokens (template text) or stay plain text (content);
        ``add_bos``: add the model's BOS token where its vocabulary asks for one."""
        data = text.encode("utf-8", "replace")
        if not data and not add_bos:
            return []
        size = len(data) + 8
        while True:
            buf = (self.L.llama_token * size)()
            n = self.L.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def piece(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.L.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n > 64:
            buf = ctypes.create_string_buffer(n)
            n = self.L.llama_token_to_piece(self.vocab, token, buf, n, 0, special)
        return buf.raw[: max(n, 0)]

    def token_table(self) -> List[Optional[bytes]]:
        """The bytes each token id adds to an answer (None for control and unused tokens), for
        constrained decoding; built once per engine."""
        if self._table is None:
            L = self.L
            special = (L.LLAMA_TOKEN_ATTR_CONTROL | L.LLAMA_TOKEN_ATTR_UNKNOWN | L.LLAMA_TOKEN_ATTR_UNUSED)
            self._table = [
                None if L.llama_vocab_get_attr(self.vocab, t) & special else (self.piece(t) or None)
                for t in range(self.n_vocab)
            ]
        return self._table

    def end_tokens(self) -> List[int]:
        """RETURNS (List[int]): The ids that end generation (end of generation / turn)."""
        if self._ends is None:
            self._ends = [t for t in range(self.n_vocab) if self.is_end(t)]
        return self._ends

    def text(self, tokens: Sequence[int]) -> str:
        """The answer text of generated tokens (control tokens left out)."""
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def is_end(self, token: int) -> bool:
        return bool(self.L.llama_vocab_is_eog(self.vocab, token))

    # -- cache and decoding ------------------------------------------------------------------
    def drop(self, seq: int, start: int = -1) -> None:
        """Forget sequence ``seq`` from position ``start`` on (-1: all of it)."""
        self.L.llama_memory_seq_rm(self.memory, seq, start, -1)

    def copy(self, src: int, dst: int) -> None:
        self.L.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def decode(self, items: Sequence[Tuple[int, int, int, bool]]) -> Dict[int, np.ndarray]:
        """Run (token, position, sequence, wants logits) items through the model, ``n_batch``
        at a time. RETURNS: item index -> its next-token logits, for the items that want them."""
        out: Dict[int, np.ndarray] = {}
        b = self.batch
        for start in range(0, len(items), self.n_batch):
            chunk = items[start : start + self.n_batch]
            b.n_tokens = len(chunk)
            for i, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[i] = tok
                b.pos[i] = pos
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = seq
                b.logits[i] = logits
            rc = self.L.llama_decode(self.ctx, b)
            self.passes += 1
            if rc != 0:
                raise RuntimeError(Errors.E107.format(rc=rc, n=len(chunk), name=self.path.name, n_ctx=self.n_ctx))
            for i, (_, _, _, logits) in enumerate(chunk):
                if logits:
                    ptr = self.L.llama_get_logits_ith(self.ctx, i)
                    out[start + i] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
        return out

    def keep_prefix(self, prefix: List[int]) -> int:
        """Make sequence 0 hold exactly ``prefix``, reusing what it holds as far as it matches.
        RETURNS (int): The tokens computed."""
        reuse = common_prefix(self.kept, prefix)
        self.drop(0, reuse)
        todo = [(t, reuse + i, 0, False) for i, t in enumerate(prefix[reuse:])]
        if todo:
            self.decode(todo)
        self.kept = list(prefix)
        return len(todo)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.L.llama_batch_free(self.batch)
            self.L.llama_free(self.ctx)
            self.L.llama_model_free(self.model)
            self.ctx = None
