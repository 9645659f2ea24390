"""Model backend over Hugging Face transformers (``AutoModelForCausalLM``)."""
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import Errors
from . import zoo
from .base import CachedModel, encode_isolated, fit_prompt, plain_chat, render_pieces
from .cache import ResponseCache
from .hf_decode import HFDecoding, greedy_inputs, lookup_draft
from .hf_dtype import _DTYPES, cpu_has_fast_bf16, fastest_dtype, quantize_int8, resolve_dtype
from .hf_score import SCORE_BATCHING, HFScoring
from .protocol import ModelLoadError, Prompt, as_messages

__all__ = ["HFModel", "cpu_has_fast_bf16", "fastest_dtype", "greedy_inputs", "lookup_draft", "quantize_int8", "resolve_dtype"]

logger = logging.getLogger("spacy_el4ner")

# One copy of each model per process, whatever the number of pipelines or members naming it.
_SHARED: Dict[Tuple[Any, ...], Tuple[Any, Any]] = {}


class HFModel(HFDecoding, HFScoring, CachedModel):
    """A causal LM loaded lazily (on first use) from an embedded name, a local folder or a hub id.

    name (str): Embedded short name (see ``python -m spacy_el4ner models list``), local folder or hub id.
    dtype (str): "bfloat16" (default; fastest on CPUs with native bf16 and on GPUs), "float16",
        "float32", "auto" (the checkpoint's), "fastest": bfloat16 where the device computes it
        natively, float32 on other CPUs (see :func:`fastest_dtype`), or "int8" (CPU only: float32
        weights with the linear layers' dynamically quantised to int8, see :func:`quantize_int8`;
        1.56-1.77x faster end to end than float32 on a CPU without native bf16; F1 within noise of
        float32's on three dev sets, though the entities differ in a third to two thirds of the
        sentences: ``benchmarks/dtype_speed.py --dtypes float32,int8``).
    device (Optional[str]): "cpu", "cuda", "cuda:1", "mps"; ``None`` picks cuda when available.
    device_map (Optional[str]): Passed to ``from_pretrained`` (accelerate), e.g. "auto"; overrides device.
    batch_size (int): Prompts per forward batch.
    max_context (int): Longest prompt + answer in tokens; a longer prompt loses its middle (the
        demonstrations), never its instruction or its text (``fit_prompt``).
    trust_remote_code (bool): Allow model code from the model folder. Off unless you turn it on.
    adapter (Optional[str]): Folder of a peft (LoRA) adapter to apply on top of the model.
    merge_adapter (bool): Add the adapter's low-rank update into the base weights once at load
        (``merge_and_unload``): a plain model of the base architecture again, on every decoding
        path of it (the same function up to the rounding of the weights' dtype; generation
        measured as fast as with the wrapper on a CPU). False: keep the peft wrapper, which
        computes the update beside every adapted layer.
    cache (Optional[ResponseCache]): On-disk cache of responses.
    share_prefix (bool): Reuse the key/value cache of the common prompt prefix when scoring
        (False: one full forward pass per prompt and continuation, the naive baseline).
    score_batching (str): How ``score`` runs when ``share_prefix`` is on: "packed" (the prompts
        that share a long prefix, e.g. the spans of one sentence, go through one forward pass:
        their common prefix once, then each prompt's own tail and its continuations side by side
        under a block attention mask; the prefix's key/value cache is kept for the next group:
        least arithmetic and fewest passes, best on a CPU), "off" (prompts one by one, each
        reusing the previous prompt's key/value cache, one extra pass per longer continuation),
        "on" (``batch_size`` rows per padded forward pass, no reuse across prompts: best on a
        GPU, where one small pass costs about as much as a large one) or "auto" (default: "on"
        on an accelerator, "packed" on a CPU).
    pack_tokens (int): Most tokens of prompt tails and continuations in one packed pass.
    prefix_cache_tokens (int): Packed scoring keeps the key/value cache of each group's common
        prefix (a sentence's instruction, demonstrations and text) for later groups and later
        ``score`` calls, up to this many tokens in all (about 12 KB each for Qwen2.5 0.5B in
        bf16): a prompt that begins like one scored before (the next batch's instruction, a
        repeated text, a later stage whose prompts begin like an earlier stage's) computes only
        what differs. Prefixes of calls before the previous one are dropped first; a prefix that
        does not fit is not kept. 0: keep only the newest one.
    draft_tokens (int): Greedy decoding drafts up to this many tokens per row and step by prompt
        lookup (an extraction answer copies text of the prompt) and keeps those the model would
        have chosen: fewer passes for the same answers (0: off).
    """

    def __init__(
        self,
        name: str,
        *,
        dtype: str = "bfloat16",
        device: Optional[str] = None,
        device_map: Optional[str] = None,
        batch_size: int = 8,
        max_context: int = 4096,
        trust_remote_code: bool = False,
        adapter: Optional[str] = None,
        cache: Optional[ResponseCache] = None,
        share_prefix: bool = True,
        score_batching: str = "auto",
        pack_tokens: int = 512,
        prefix_cache_tokens: int = 8192,
        draft_tokens: int = 2,
        merge_adapter: bool = True,
    ) -> None:
        if score_batching not in SCORE_BATCHING:
            raise ValueError(Errors.E116.format(options=SCORE_BATCHING, value=score_batching))
        if pack_tokens < 1:
            raise ValueError(Errors.E117.format(key="pack_tokens", rule="at least 1", value=pack_tokens))
        if prefix_cache_tokens < 0:
            raise ValueError(Errors.E117.format(key="prefix_cache_tokens", rule="0 or more", value=prefix_cache_tokens))
        if dtype not in _DTYPES:
            raise ValueError(Errors.E118.format(options=_DTYPES, value=dtype))
        if dtype == "int8":
            if (device or "cpu") != "cpu" or device_map is not None:
                raise ValueError(Errors.E119.format(device=device, device_map=device_map))
            if adapter and not merge_adapter:
                raise ValueError(Errors.E120)
            device = "cpu"  # not cuda where one is present: the quantised kernels are the CPU's
        if batch_size < 1:
            raise ValueError(Errors.E117.format(key="batch_size", rule="at least 1", value=batch_size))
        if isinstance(max_context, bool) or not isinstance(max_context, int) or max_context < 16:
            raise ValueError(Errors.E117.format(key="max_context", rule="an integer >= 16 (tokens)", value=max_context))
        zoo.check_name(name)
        super().__init__(name, cache, adapter)
        self.dtype = dtype
        self._resolved_dtype: Optional[str] = None
        self.device = device
        self.device_map = device_map
        self.batch_size = batch_size
        self.max_context = max_context
        self.trust_remote_code = trust_remote_code
        self.merge_adapter = merge_adapter
        self.share_prefix = share_prefix
        self.score_batching = score_batching
        self.pack_tokens = pack_tokens
        self.prefix_cache_tokens = prefix_cache_tokens
        # kept prefixes: token ids -> (key/value cache of exactly those tokens, score() call number)
        self._prefixes: "OrderedDict[Tuple[int, ...], Tuple[Any, int]]" = OrderedDict()
        self._prefix_total = 0
        # One-character stop strings ("]") are checked by a vocabulary lookup on the last token
        # (same answers as transformers' stop_strings; 1.14x faster batched extraction on a CPU).
        self.token_stop = True
        # Greedy decoding drops finished rows from the batch (``_decode_shrinking``); False: one
        # ``model.generate`` per batch, which computes every row until the longest answer ends.
        self.shrink_batches = True
        # Stop a row caught in a repetition loop (``looping``), in both decoding paths. The answer
        # is the same up to the loop, so the response cache key does not change: an answer cached
        # before this rule may run on with the loop, which parses to the same items.
        self.stop_loops = True
        # Greedy decoding feeds up to this many drafted tokens per row and step (``lookup_draft``)
        # and keeps those the model itself would have chosen: the same answer in fewer passes
        # (0: off). 2 measured best on this CPU (1-4 within noise; wider passes cost more here).
        self.draft_tokens = draft_tokens
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def resolved_dtype(self) -> str:
        """The dtype the weights load in: ``dtype``, with ``"fastest"`` resolved for the device
        (bfloat16 on a CUDA GPU or a CPU with native bf16, float32 on other CPUs)."""
        if self._resolved_dtype is None:  # once: cache keys ask for it per prompt
            accelerate_map = self.dtype == "fastest" and self.device_map is not None
            self._resolved_dtype = "bfloat16" if accelerate_map else resolve_dtype(self.dtype, self.device)
        return self._resolved_dtype

    def cache_name(self) -> str:
        """The model's name in response cache keys: answers computed in float32 or float16 are
        cached apart from bf16 ones (bf16, the historical default, keeps the plain name so that
        existing caches stay valid)."""
        dtype = self.resolved_dtype
        return self.name if dtype in ("bfloat16", "auto") else f"{self.name}|{dtype}"

    def __repr__(self) -> str:
        return f"HFModel({self.name!r}, dtype={self.dtype!r}, loaded={self._model is not None})"

    # -- loading ---------------------------------------------------------------------------
    def _resolve_path(self) -> str:
        if self.name in zoo.ZOO:
            return str(zoo.ensure(self.name))
        if self.name in zoo.EXCLUDED:
            raise ModelLoadError(Errors.E121.format(name=self.name, reason=zoo.EXCLUDED[self.name], known=", ".join(sorted(zoo.ZOO))))
        path = Path(self.name).expanduser()
        if path.exists():
            if not (path / "config.json").exists():
                raise ModelLoadError(Errors.E122.format(path=path, known=", ".join(sorted(zoo.ZOO))))
            return str(path)
        return self.name  # a hub id; fails cleanly offline below

    def load(self) -> None:
        """Load tokenizer and weights (idempotent)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self._resolve_path()
        share_key = (path, self.resolved_dtype, self.device, self.device_map, self.adapter, self.merge_adapter, self.trust_remote_code)
        if share_key in _SHARED:
            self._tokenizer, self._model = _SHARED[share_key]
            return
        kwargs: Dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            kwargs["local_files_only"] = True
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            load_dtype = "float32" if self.resolved_dtype == "int8" else self.resolved_dtype
            dtype = "auto" if load_dtype == "auto" else getattr(torch, load_dtype)
            mkw = dict(kwargs, torch_dtype=dtype)
            if self.device_map is not None:
                mkw["device_map"] = self.device_map
            model = AutoModelForCausalLM.from_pretrained(path, **mkw)
        except (OSError, ValueError) as err:
            raise ModelLoadError(Errors.E123.format(name=self.name, err=err, known=", ".join(sorted(zoo.ZOO)))) from err
        if self.device_map is None:
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model.to(device)
        if self.adapter:
            try:
                from peft import PeftModel
            except ImportError as err:  # pragma: no cover
                raise ModelLoadError(Errors.E124) from err
            try:
                model = PeftModel.from_pretrained(model, self.adapter)
            except (OSError, ValueError) as err:
                raise ModelLoadError(Errors.E125.format(adapter=self.adapter, name=self.name, err=err)) from err
            if self.merge_adapter:
                model = model.merge_and_unload()
        model.eval()
        if self.resolved_dtype == "int8":
            model = quantize_int8(model)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model = tokenizer, model
        _SHARED[share_key] = (tokenizer, model)
        logger.info("Loaded model %s from %s (%s)", self.name, path, self.resolved_dtype)

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    @property
    def model(self) -> Any:
        self.load()
        return self._model

    # -- prompting -------------------------------------------------------------------------
    def format(self, prompt: Prompt, answer_prefix: str = "") -> str:
        """Render a prompt (a user message, or chat messages) with the chat template, when the
        tokenizer has one, else as plain "Role: text" lines; the result keeps which pieces are
        message contents (``Rendered``)."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return render_pieces(lambda m: tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True), as_messages(prompt), answer_prefix)
        return render_pieces(lambda m: plain_chat(m, answer_prefix), as_messages(prompt), answer_prefix)

    def _tokenize(self, text: str, special: bool, first: bool) -> List[int]:
        tok = self.tokenizer
        add_special = first and not getattr(tok, "chat_template", None)
        return list(tok(text, add_special_tokens=add_special, split_special_tokens=not special)["input_ids"])

    def _encode(self, text: str, reserve: int) -> List[int]:
        """Token ids of a rendered prompt; message contents never become control tokens; a
        prompt over ``max_context - reserve`` tokens loses its middle (``fit_prompt``)."""
        ids = encode_isolated(text, self._tokenize)
        return fit_prompt(ids, max(16, self.max_context - reserve), self.name)

    def _device(self) -> Any:
        return next(self.model.parameters()).device
