"""Model backend over Hugging Face transformers (``AutoModelForCausalLM``)."""
import functools
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from . import zoo
from .base import CachedModel, common_prefix, cut_at_stop, cut_loop, encode_isolated, fit_prompt, looping, plain_chat, render_pieces
from .cache import ResponseCache
from .protocol import ModelLoadError, Prompt, as_messages

logger = logging.getLogger("spacy_el4ner")

_DTYPES = ("fastest", "auto", "bfloat16", "float16", "float32", "int8")
# int8 (CPU only): linear layers hold int8 weights (one scale per output row) and quantise their
# input on the fly (torch's dynamic quantisation, fbgemm/x86 kernels); the MLP's output projection
# keeps float32 weights, since its inputs carry the outliers that per-tensor int8 clips (with it
# quantised too, Qwen2.5 0.5B's next-token distributions moved 12x further from float32's).
_INT8_KEEP_FLOAT = ("down_proj",)


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """RETURNS (bool): Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it,
    torch emulates bf16 matrix products: on a 2-core AVX2 EPYC, Qwen2.5 0.5B read a 217-token
    prompt 4.3x slower in bf16 than in fp32, and the default pipeline ran 3.35x slower
    (``benchmarks/dtype_speed.py``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf8", errors="replace")
    except OSError:
        flags = None
    if flags is not None:
        return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))
    try:  # not Linux: oneDNN's view (true on any AVX512 CPU, so it may be slower there)
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover
        return False


def fastest_dtype(device: str) -> str:
    """The dtype ``"fastest"`` stands for on ``device``: bfloat16 on a CUDA GPU and on a CPU with
    native bf16, float32 on other CPUs and devices."""
    if device.startswith("cuda"):
        return "bfloat16"
    if device.startswith("cpu"):
        return "bfloat16" if cpu_has_fast_bf16() else "float32"
    return "float32"


def resolve_dtype(dtype: str, device: Optional[str] = None) -> str:
    """``dtype`` with ``"fastest"`` resolved for ``device`` (None: cuda when available, else cpu)."""
    if dtype != "fastest":
        return dtype
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return fastest_dtype(device)


def quantize_int8(model: Any, keep_float: Sequence[str] = _INT8_KEEP_FLOAT) -> Any:
    """Dynamic int8 quantisation of a float32 CPU model's linear layers (weights: int8 with one
    scale per output row; inputs: quantised per tensor on the fly), in place.

    model (Any): A transformers model in float32 on the CPU (an adapter already merged).
    keep_float (Sequence[str]): Linear layers whose name ends with one of these keep float32.
    RETURNS (Any): The quantised model.
    """
    import warnings

    import torch

    try:  # torch.ao.quantization is deprecated in favour of torchao, not yet removed (torch 2.13)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as err:  # pragma: no cover
        raise ModelLoadError(f"dtype 'int8' needs torch.ao.quantization, which this torch ({torch.__version__}) lacks: use float32") from err
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("x86", "fbgemm") if e in engines), None)
    if engine is None:
        raise ModelLoadError(f"dtype 'int8' needs torch's x86 or fbgemm quantised kernels; this torch has {engines}: use float32")
    torch.backends.quantized.engine = engine
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith(tuple(keep_float))
    }
    with warnings.catch_warnings():  # one deprecation notice per layer, about torch, not about the user's setting
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated", category=UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


SCORE_BATCHING = ("auto", "packed", "on", "off")
# What one more forward pass costs on a CPU, in prompt tokens (about 50 ms fixed against 1.2 ms a
# token for Qwen2.5-0.5B in bf16 on 2 cores): packing a prompt with a group is worth it while it
# lengthens the group's tails by fewer tokens than this.
_PASS_TOKENS = 32
# A prefix shared by every prompt of a generation batch is computed once when at least this long.
_MIN_SHARED = 16
# One copy of each model per process, whatever the number of pipelines or members naming it.
_SHARED: Dict[Tuple[Any, ...], Tuple[Any, Any]] = {}


class HFModel(CachedModel):
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
            raise ValueError(f"score_batching must be one of {SCORE_BATCHING}, not '{score_batching}'")
        if pack_tokens < 1:
            raise ValueError("pack_tokens must be at least 1")
        if prefix_cache_tokens < 0:
            raise ValueError("prefix_cache_tokens must be 0 or more")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, not '{dtype}'")
        if dtype == "int8":
            if (device or "cpu") != "cpu" or device_map is not None:
                raise ValueError(f"dtype 'int8' runs on the CPU only (device={device!r}, device_map={device_map!r}): use device='cpu' and no device_map, or bfloat16 on a GPU")
            if adapter and not merge_adapter:
                raise ValueError("dtype 'int8' quantises the merged weights: set merge_adapter = true to use an adapter with it")
            device = "cpu"  # not cuda where one is present: the quantised kernels are the CPU's
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        zoo.check_name(name)
        super().__init__(name, cache)
        self.dtype = dtype
        self._resolved_dtype: Optional[str] = None
        self.device = device
        self.device_map = device_map
        self.batch_size = batch_size
        self.max_context = max_context
        self.trust_remote_code = trust_remote_code
        self.adapter = adapter
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
        self._adapter_ids: Dict[str, Optional[str]] = {}  # adapter folder -> its name in the cache

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
            raise ModelLoadError(f"Model '{self.name}' is not supported: {zoo.EXCLUDED[self.name]}")
        path = Path(self.name).expanduser()
        if path.exists():
            if not (path / "config.json").exists():
                raise ModelLoadError(
                    f"Folder '{path}' has no config.json: give a transformers model folder "
                    f"(save_pretrained) or an embedded name: {', '.join(sorted(zoo.ZOO))}."
                )
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
            raise ModelLoadError(
                f"Could not load model '{self.name}': {err}\nUse an embedded name "
                f"({', '.join(sorted(zoo.ZOO))}; install with `python -m spacy_el4ner models pull NAME`) "
                "or a local folder written by save_pretrained. Nothing is downloaded at run time."
            ) from err
        if self.device_map is None:
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model.to(device)
        if self.adapter:
            try:
                from peft import PeftModel
            except ImportError as err:  # pragma: no cover
                raise ModelLoadError("adapter= needs peft: pip install 'peft>=0.10'") from err
            try:
                model = PeftModel.from_pretrained(model, self.adapter)
            except (OSError, ValueError) as err:
                raise ModelLoadError(
                    f"Could not load adapter '{self.adapter}' on model '{self.name}': {err}\nGive the "
                    "folder written by `python -m spacy_el4ner finetune` (adapter_config.json and "
                    "adapter_model.safetensors) for this same base model."
                ) from err
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
        messages = as_messages(prompt)
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = plain_chat(messages, answer_prefix)
        return render_pieces(text, messages, answer_prefix)

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

    def cache_adapter(self) -> Optional[str]:
        """RETURNS (Optional[str]): The adapter's name in the response cache keys (by content, see
        ``ResponseCache.adapter_id``); looked up once per folder (``spacy.load`` may repoint it)."""
        if not self.adapter or self.cache is None:
            return self.adapter
        if self.adapter not in self._adapter_ids:
            self._adapter_ids[self.adapter] = self.cache.adapter_id(self.adapter)
        return self._adapter_ids[self.adapter]

    def _generate_uncached(
        self,
        texts: List[str],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]],
        separators: Sequence[str],
    ) -> Iterator[Tuple[int, str]]:
        """Answers in batches of ``batch_size`` prompts of similar length. With ``constrain_to``
        (one input text per prompt), decoding is constrained so that the answer is made only of
        ``separators`` and copies of text from that input (see ``models.constrained``)."""
        encoded = [self._encode(text, max_new_tokens) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))  # length buckets: less padding
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = None if constrain_to is None else [constrain_to[i] for i in batch]
            outs = self._generate_batch([encoded[i] for i in batch], max_new_tokens, stop, rows, separators)
            yield from zip(batch, outs)

    def _generate_batch(
        self,
        batch: List[List[int]],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]] = None,
        separators: Sequence[str] = (),
    ) -> List[str]:
        tok = self.tokenizer
        width = max(len(ids) for ids in batch)
        processor = None
        if constrain_to is not None:
            from .constrained import substring_processor

            processor = substring_processor(tok, constrain_to, separators, prompt_length=width, eos_token_id=self._eos_ids())
        if self.shrink_batches:
            rows = self._decode_shrinking(batch, max_new_tokens, stop, processor)
        else:
            rows = self._decode_generate(batch, max_new_tokens, stop, processor)
        answers: List[str] = []
        for row in rows:
            self._stats["generated_tokens"] += len(row)
            text = tok.decode(row, skip_special_tokens=True)
            answers.append(cut_at_stop(text, stop))
        return answers

    def _decode_generate(
        self, batch: List[List[int]], max_new_tokens: int, stop: Sequence[str], processor: Any
    ) -> List[List[int]]:
        """Greedy decoding of a left-padded batch by ``model.generate`` (every row is computed
        until the longest answer ends). RETURNS: The generated token ids of each row."""
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id
        kwargs = greedy_inputs(batch, pad, self._device(), max_new_tokens)
        if stop and self.token_stop and all(len(x) == 1 for x in stop):
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([TokenStop(tok, stop, self._device())])
        elif stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tok)
        if processor is not None:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([processor])
        self._stats["prompt_tokens"] += sum(len(ids) for ids in batch)
        with torch.no_grad():
            out = self.model.generate(**kwargs)
        new = out[:, kwargs["input_ids"].shape[1] :]
        self._stats["forward_passes"] += int(new.shape[1]) or 1
        rows = [[t for t in row if t != pad] for row in new.tolist()]
        if self.stop_loops:  # the same answers as the shrinking decoder (this path is the naive baseline)
            rows = [cut_loop(row) for row in rows]
        return rows

    def _eos_ids(self) -> List[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)

    def _decode_shrinking(
        self, batch: List[List[int]], max_new_tokens: int, stop: Sequence[str], processor: Any
    ) -> List[List[int]]:
        """Greedy decoding of a batch of prompts (token ids) that drops each row from the batch
        (and from the key/value cache) as soon as it is finished, so a long answer does not keep
        the short ones' rows in every step, as ``generate`` does. A prefix common to all the
        prompts (the instruction) is computed once and its cache copied to every row; the tails
        follow, left-padded. Same stop rules as ``generate`` (EOS, ``max_new_tokens``, stop
        strings) and the same constraint (``processor``: a ``SubstringLogitsProcessor`` or None).
        Unconstrained, each step also feeds up to ``draft_tokens`` drafted tokens per row
        (``lookup_draft``: what followed the same tokens earlier in the prompt or answer) and
        takes those that greedy decoding would have chosen, so several tokens can come out of
        one pass; the keys/values of the drafts not taken are masked out for later steps.
        Exact in exact arithmetic; in bf16 a wider pass rounds differently, so an answer may
        differ where two tokens are nearly tied (3 of 144 extraction answers on WNUT-17), as it
        does when the batch changes.
        RETURNS: The generated token ids of each row (EOS included where it ended the row).
        """
        import torch

        tok = self.tokenizer
        dev = self._device()
        pad = tok.pad_token_id
        eos = set(self._eos_ids())
        one_char = bool(stop) and all(len(x) == 1 for x in stop)
        stop_mask = TokenStop(tok, stop, "cpu").mask if one_char else None
        common = _shared_prefix(batch)
        if len(batch) < 2 or common < _MIN_SHARED:
            common = 0
        draft = self.draft_tokens if processor is None else 0
        out: List[List[int]] = [[] for _ in batch]
        active = list(range(len(batch)))
        with torch.no_grad():
            cache, mask, next_pos, last = self._prefill_padded(batch, common)
            logits = last.unsqueeze(1)  # (rows, positions, vocab): the positions fed in this step
            drafts: List[List[int]] = [[] for _ in batch]
            while True:
                keep: List[int] = []
                valid: List[int] = []
                best = None if processor is not None else logits.float().argmax(-1).tolist()
                for k, r in enumerate(active):
                    finished = False
                    j = 0
                    for j in range(len(drafts[k]) + 1):
                        if best is not None:
                            t = best[k][j]
                        else:
                            t = int(processor.constrain([r], [out[r]], logits[k : k + 1, j].float())[0].argmax())
                        out[r].append(t)
                        finished = (
                            t in eos
                            or len(out[r]) >= max_new_tokens
                            or (stop_mask is not None and t < stop_mask.shape[0] and bool(stop_mask[t]))
                            or (bool(stop) and not one_char and any(x in tok.decode(out[r]) for x in stop))
                            or (self.stop_loops and looping(out[r]))
                        )
                        # the next drafted token was fed after this one: its logits hold if it is the one chosen
                        if finished or j >= len(drafts[k]) or drafts[k][j] != t:
                            break
                    valid.append(j + 1)  # the inputs of this step whose keys/values are right
                    if not finished:
                        keep.append(k)
                width = logits.shape[1]
                if width > 1:  # drafted tokens that were not taken: masked out of the cache
                    taken = torch.arange(width, device=dev).unsqueeze(0) < torch.tensor(valid, device=dev).unsqueeze(1)
                    mask[:, -width:] = taken.to(mask.dtype)
                # next_pos: the position of the first input of a step (after the prefill, of the
                # prompt's last token); the token fed next goes after the inputs that were right
                next_pos = next_pos + torch.tensor(valid, device=dev).unsqueeze(1)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=dev)
                    cache.batch_select_indices(index)
                    mask, next_pos = mask[index], next_pos[index]
                    active = [active[k] for k in keep]
                drafts = [lookup_draft(batch[r] + out[r], draft) for r in active] if draft else [[] for _ in active]
                width = 1 + max(len(d) for d in drafts)
                step = torch.tensor([[out[r][-1]] + d + [pad] * (width - 1 - len(d)) for r, d in zip(active, drafts)], device=dev)
                fed = torch.tensor([[1] * (1 + len(d)) + [0] * (width - 1 - len(d)) for d in drafts], dtype=mask.dtype, device=dev)
                mask = torch.cat([mask, fed], dim=1)
                positions = next_pos + torch.arange(width, device=dev).unsqueeze(0)
                logits = self.model(
                    input_ids=step, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                    logits_to_keep=width,
                ).logits
                self._stats["forward_passes"] += 1
                self._stats["drafted_tokens"] += sum(len(d) for d in drafts)
        return out

    def _prefill_padded(self, batch: List[List[int]], common: int) -> Tuple[Any, Any, Any, Any]:
        """One forward pass over the left-padded prompt tails (after their ``common`` prefix,
        computed once). RETURNS: (cache, attention mask, the position of each row's last prompt
        token, its logits)."""
        import torch
        from transformers import DynamicCache

        dev = self._device()
        pad = self.tokenizer.pad_token_id
        cache = DynamicCache()
        tails = [ids[common:] for ids in batch]
        width = max(len(t) for t in tails)
        ids = torch.tensor([[pad] * (width - len(t)) + list(t) for t in tails], device=dev)
        mask = torch.tensor([[1] * common + [0] * (width - len(t)) + [1] * len(t) for t in tails], device=dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, common:]
        if common:
            self.model(input_ids=torch.tensor([batch[0][:common]], device=dev), past_key_values=cache, use_cache=True, logits_to_keep=1)
            self._stats["forward_passes"] += 1
            cache.batch_repeat_interleave(len(batch))
        self._stats["prompt_tokens"] += common + sum(len(t) for t in tails)
        logits = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1
        ).logits[:, -1]
        self._stats["forward_passes"] += 1
        return cache, mask, positions[:, -1:], logits

    def _score_uncached(self, texts: List[str], continuations: List[Sequence[str]]) -> List[List[float]]:
        """On a CPU, consecutive prompts share their key/value cache up to their common token prefix
        (the instruction and demonstrations of one text are computed once for all its spans and
        labels); the first token of every continuation is read off the prompt's own forward pass,
        and only longer continuations need one small extra pass each. On an accelerator the
        prompts go in padded batches instead (see ``score_batching``).
        """
        todo: List[Tuple[List[int], List[List[int]]]] = []
        for text, conts in zip(texts, continuations):
            cont_ids = self.continuation_ids(conts)
            todo.append((self._encode(text, max(len(c) for c in cont_ids)), cont_ids))
        mode = self._scoring_mode() if self.share_prefix else "naive"
        if mode == "on":
            return self._score_batched(todo)
        if mode == "packed":
            return self._score_packed_all(todo)
        computed = []
        state: Optional[Tuple[List[int], Any]] = None
        for ids, cont_ids in todo:
            if self.share_prefix:
                scores, state = self._score_shared(ids, cont_ids, state)
            else:
                scores = self._score_naive(ids, cont_ids)
            computed.append(scores)
        return computed

    def _scoring_mode(self) -> str:
        """"on", "packed" or "off": ``score_batching`` with "auto" resolved for the device."""
        if self.score_batching == "auto":
            return "on" if self._device().type != "cpu" else "packed"
        return self.score_batching

    def _batch_scores(self) -> bool:
        return self._scoring_mode() == "on"

    def _score_packed_all(self, items: List[Tuple[List[int], List[List[int]]]]) -> List[List[float]]:
        """Scores by ``_score_packed``, over groups of consecutive prompts that share a prefix.

        A prompt joins the group when that lengthens the tails of the prompts already in it by
        fewer tokens in all than a forward pass costs (``_PASS_TOKENS``): the spans of one
        sentence share its instruction and demonstrations and go together, two sentences share
        only the instruction and do not; and while the packed tokens fit in ``pack_tokens``.
        Each group starts from the kept prefix cache that shares most of its prefix
        (``prefix_cache_tokens``).
        """
        call = self._stats["calls"]
        out: List[List[float]] = []
        group: List[Tuple[List[int], List[List[int]]]] = []
        common = 0
        size = 0

        def run() -> None:
            state = self._take_prefix(group[0][0][: _group_prefix(group)])
            scores, (prefix, cache) = self._score_packed(group, state)
            self._keep_prefix(prefix, cache, call)
            out.extend(scores)

        for ids, conts in items:
            extra = sum(len(c) - 1 for c in conts)
            if group:
                lcp = min(common, common_prefix(group[0][0], ids), len(ids) - 1)
                grown = size + (common - lcp) * len(group) + len(ids) - lcp + extra
                if lcp > 0 and (common - lcp) * len(group) <= _PASS_TOKENS and grown <= self.pack_tokens:
                    group.append((ids, conts))
                    common, size = lcp, grown
                    continue
                run()
            group, common, size = [(ids, conts)], len(ids) - 1, 1 + extra
        if group:
            run()
        return out

    def _take_prefix(self, prefix: List[int]) -> Optional[Tuple[List[int], Any]]:
        """The kept cache that shares the longest start with ``prefix``, as a ``_score_packed``
        state: handed over when all of it is reused (the pass extends it, and it is kept again
        under its new prefix), copied up to the shared length otherwise (the kept one stays)."""
        best: Optional[Tuple[int, ...]] = None
        best_len = 0
        for key in self._prefixes:
            n = common_prefix(key, prefix)
            if n > best_len:
                best, best_len = key, n
        if best is None:
            return None
        cache, _ = self._prefixes[best]
        if best_len == len(best):
            del self._prefixes[best]
            self._prefix_total -= len(best)
            return list(best), cache
        return list(best[:best_len]), _copy_cache(cache, best_len)

    def _keep_prefix(self, prefix: List[int], cache: Any, call: int) -> None:
        """Keep ``cache`` (of exactly the tokens ``prefix``) for later groups and calls, within
        ``prefix_cache_tokens``: prefixes of calls before the previous one go first (oldest
        first); when the new one still does not fit, it is not kept (so that one long call does
        not push out the start of itself that the next call will ask for). With a bound of 0
        only the newest prefix is kept (reuse between consecutive groups)."""
        key = tuple(prefix)
        if not key:
            return
        if key in self._prefixes:
            self._prefix_total -= len(key)
            del self._prefixes[key]
        if self.prefix_cache_tokens == 0:
            self._prefixes.clear()
            self._prefixes[key] = (cache, call)
            self._prefix_total = len(key)
            return
        for old in [k for k, (_, c) in self._prefixes.items() if c < call - 1]:
            if self._prefix_total + len(key) <= self.prefix_cache_tokens:
                break
            del self._prefixes[old]
            self._prefix_total -= len(old)
        if self._prefix_total + len(key) <= self.prefix_cache_tokens:
            self._prefixes[key] = (cache, call)
            self._prefix_total += len(key)

    def _score_packed(
        self, group: List[Tuple[List[int], List[List[int]]]], state: Optional[Tuple[List[int], Any]]
    ) -> Tuple[List[List[float]], Tuple[List[int], Any]]:
        """One forward pass for a group of prompts: the part of their common prefix P that the
        kept cache (``state``) lacks, then each prompt's tail (after P) and, after each tail, every
        continuation but its last token. Each tail sees P and itself; each continuation sees P,
        its prompt's tail and itself (a block attention mask with explicit positions). Logits
        are kept only where they are read. RETURNS: the scores, and the new state (P, its cache).
        """
        import torch
        from transformers import DynamicCache

        dev = self._device()
        n_common = _group_prefix(group)
        prefix = group[0][0][:n_common]
        reuse = 0
        cache = None
        if state is not None:
            prev, cache = state
            reuse = min(common_prefix(prev, prefix), n_common)
            if reuse > 0:
                cache.crop(reuse)
        if reuse == 0 or cache is None:
            cache = DynamicCache()
        tokens: List[int] = list(prefix[reuse:])
        positions: List[int] = list(range(reuse, n_common))
        # segments: (start in tokens, length, start and length of the tail it also sees)
        segments: List[Tuple[int, int, int, int]] = []
        reads: List[Tuple[int, int, int, int]] = []  # (item, continuation or -1, first logit row, rows)
        keep: List[int] = []
        for n, (ids, conts) in enumerate(group):
            tail = ids[n_common:]
            tail_start = len(tokens)
            segments.append((tail_start, len(tail), 0, 0))
            tokens.extend(tail)
            positions.extend(range(n_common, len(ids)))
            reads.append((n, -1, len(keep), 1))
            keep.append(tail_start + len(tail) - 1)
            for j, c in enumerate(conts):
                if len(c) < 2:
                    continue
                start = len(tokens)
                segments.append((start, len(c) - 1, tail_start, len(tail)))
                tokens.extend(c[:-1])
                positions.extend(range(len(ids), len(ids) + len(c) - 1))
                reads.append((n, j, len(keep), len(c) - 1))
                keep.extend(range(start, start + len(c) - 1))
        q = len(tokens)
        base = len(prefix) - reuse  # the uncached part of P comes first in `tokens`
        mask = torch.zeros((q, reuse + q), dtype=torch.bool)
        mask[:, :reuse] = True
        mask[:, reuse : reuse + base] = True
        mask[:base, reuse : reuse + base] = torch.ones((base, base), dtype=torch.bool).tril()
        for start, length, sees, sees_len in segments:
            rows = slice(start, start + length)
            mask[rows, reuse + start : reuse + start + length] = torch.ones((length, length), dtype=torch.bool).tril()
            mask[rows, reuse + sees : reuse + sees + sees_len] = True
        dtype = next(self.model.parameters()).dtype
        # additive form: every attention implementation (eager, sdpa) reads it the same way
        bias = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, torch.finfo(dtype).min)
        with torch.no_grad():
            out = self.model(
                input_ids=torch.tensor([tokens], device=dev),
                attention_mask=bias[None, None].to(dev),
                position_ids=torch.tensor([positions], device=dev),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=torch.tensor(keep, device=dev),
            )
        self._stats["forward_passes"] += 1
        self._stats["prompt_tokens"] += q
        logp = torch.log_softmax(out.logits[0].float(), dim=-1)
        scores = [[0.0] * len(conts) for _, conts in group]
        for n, j, row, length in reads:
            conts = group[n][1]
            if j < 0:  # first tokens of every continuation, from the prompt's last logits
                for i, x in enumerate(logp[row, [c[0] for c in conts]].tolist()):
                    scores[n][i] += x
            else:  # the rest of continuation j
                rest = torch.tensor(conts[j][1:], device=dev)
                scores[n][j] += float(logp[row : row + length].gather(-1, rest[:, None]).sum())
        cache.crop(n_common)
        return scores, (list(prefix), cache)

    def _score_batched(self, items: List[Tuple[List[int], List[List[int]]]]) -> List[List[float]]:
        """Scores in padded batches of ``batch_size`` rows: one row per prompt (its last logits
        give every continuation's first token) and one per longer continuation (prompt +
        continuation minus its last token)."""
        import torch

        rows: List[Tuple[int, int, List[int]]] = []  # (item, continuation or -1, token ids)
        for n, (ids, conts) in enumerate(items):
            rows.append((n, -1, ids))
            rows.extend((n, j, ids + c[:-1]) for j, c in enumerate(conts) if len(c) > 1)
        scores = [[0.0] * len(conts) for _, conts in items]
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r][2]))  # length buckets
        pad = self.tokenizer.pad_token_id
        dev = self._device()
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = [rows[r] for r in order[start : start + self.batch_size]]
                keep = max(1 if j < 0 else len(items[n][1][j]) for n, j, _ in batch)
                kwargs = greedy_inputs([seq for _, _, seq in batch], pad, dev, 0)
                mask = kwargs["attention_mask"]
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                out = self.model(
                    input_ids=kwargs["input_ids"], attention_mask=mask, position_ids=positions, logits_to_keep=keep
                )
                self._stats["forward_passes"] += 1
                self._stats["prompt_tokens"] += sum(len(seq) for _, _, seq in batch)
                logp = torch.log_softmax(out.logits.float(), dim=-1)
                for b, (n, j, _) in enumerate(batch):
                    conts = items[n][1]
                    if j < 0:  # first tokens of every continuation, from the prompt's last logits
                        firsts = logp[b, keep - 1, [c[0] for c in conts]].tolist()
                        for i, x in enumerate(firsts):
                            scores[n][i] += x
                    else:  # the rest of continuation j
                        c = conts[j]
                        m = len(c) - 1
                        scores[n][j] += sum(logp[b, keep - m : keep, :].gather(-1, torch.tensor(c[1:], device=dev)[:, None]).flatten().tolist())
        return scores

    def continuation_ids(self, conts: Sequence[str]) -> List[List[int]]:
        tok = self.tokenizer
        ids = [tok(c, add_special_tokens=False)["input_ids"] for c in conts]
        for c, i in zip(conts, ids):
            if not i:
                raise ValueError(f"Continuation {c!r} is empty after tokenization")
        return ids

    def _score_naive(self, ids: List[int], cont_ids: List[List[int]]) -> List[float]:
        import torch

        dev = self._device()
        scores = []
        with torch.no_grad():
            for c in cont_ids:
                out = self.model(input_ids=torch.tensor([ids + c], device=dev))
                self._stats["forward_passes"] += 1
                self._stats["prompt_tokens"] += len(ids) + len(c)
                logp = torch.log_softmax(out.logits[0, len(ids) - 1 : -1].float(), dim=-1)
                scores.append(sum(float(logp[j, t]) for j, t in enumerate(c)))
        return scores

    def _score_shared(
        self, ids: List[int], cont_ids: List[List[int]], state: Optional[Tuple[List[int], Any]]
    ) -> Tuple[List[float], Tuple[List[int], Any]]:
        import torch
        from transformers import DynamicCache

        dev = self._device()
        model = self.model
        reuse = 0
        cache = None
        if state is not None:
            prev, cache = state
            reuse = min(common_prefix(prev, ids), len(ids) - 1)
            if reuse > 0:
                cache.crop(reuse)
        if reuse == 0:
            cache = DynamicCache()
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor([ids[reuse:]], device=dev), past_key_values=cache, use_cache=True, logits_to_keep=1
            )
            self._stats["forward_passes"] += 1
            self._stats["prompt_tokens"] += len(ids) - reuse
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            scores = [float(first[c[0]]) for c in cont_ids]
            for i, c in enumerate(cont_ids):
                if len(c) == 1:
                    continue
                step = model(input_ids=torch.tensor([c[:-1]], device=dev), past_key_values=cache, use_cache=True)
                self._stats["forward_passes"] += 1
                logp = torch.log_softmax(step.logits[0].float(), dim=-1)
                scores[i] += sum(float(logp[j, c[j + 1]]) for j in range(len(c) - 1))
                cache.crop(len(ids))
        return scores, (ids, cache)


def _copy_cache(cache: Any, length: int) -> Any:
    """RETURNS: A new ``DynamicCache`` with a copy of the first ``length`` positions of ``cache``."""
    from transformers import DynamicCache

    return DynamicCache.from_legacy_cache(
        tuple((k[:, :, :length].clone(), v[:, :, :length].clone()) for k, v in cache.to_legacy_cache())
    )


def _shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """RETURNS (int): The length of the prefix common to ``prompts`` (token id lists), leaving
    each at least one token of its own (its last logits give what comes next)."""
    return min(min(common_prefix(prompts[0], ids) for ids in prompts), min(len(ids) for ids in prompts) - 1)


def _group_prefix(group: Sequence[Tuple[List[int], Any]]) -> int:
    """RETURNS (int): ``_shared_prefix`` of a scoring group's prompts."""
    return _shared_prefix([ids for ids, _ in group])


def lookup_draft(context: Sequence[int], n: int, ngram: int = 3, window: int = 1024) -> List[int]:
    """Prompt lookup: the ``n`` tokens that followed the latest earlier occurrence of the longest
    (up to ``ngram`` tokens) end of ``context`` (the prompt and the answer so far) within its last
    ``window`` tokens. An extraction answer copies the input text, so its next tokens are often
    there. RETURNS (List[int]): The drafted tokens (none when the end occurs nowhere before)."""
    if n <= 0:
        return []
    ctx = list(context[-window:])
    end = len(ctx)
    for size in range(min(ngram, end - 1), 0, -1):
        tail = ctx[end - size :]
        for i in range(end - size - 1, -1, -1):
            if ctx[i : i + size] == tail:
                return ctx[i + size : i + size + n]
    return []


def greedy_inputs(batch: Sequence[Sequence[int]], pad: int, device: Any, max_new_tokens: int) -> Dict[str, Any]:
    """``generate`` arguments for greedy decoding of left-padded prompts (token id lists)."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in batch], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
    return dict(
        input_ids=input_ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=pad,
    )


_STOP_MASKS: Dict[Tuple[int, Tuple[str, ...], str], Any] = {}


class TokenStop:
    """Stops a row as soon as its newest token contains one of the (one-character) stop strings.

    Exact for one-character stop strings: the answer is cut at the first stop string anyway
    (``cut_at_stop``), and such a string never spans two tokens. One tensor lookup per step.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], device: Any) -> None:
        import torch

        key = (id(tokenizer), tuple(sorted(stop)), str(device))
        if key not in _STOP_MASKS:
            n = max(len(tokenizer), tokenizer.vocab_size)
            texts = tokenizer.batch_decode([[i] for i in range(n)])
            _STOP_MASKS[key] = torch.tensor([any(x in t for x in stop) for t in texts], dtype=torch.bool, device=device)
        self.mask = _STOP_MASKS[key]

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        last = input_ids[:, -1]
        return self.mask[last.clamp(max=self.mask.shape[0] - 1)]
