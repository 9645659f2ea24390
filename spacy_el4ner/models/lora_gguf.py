"""A peft LoRA adapter (what ``finetune`` writes) as a llama.cpp LoRA GGUF file, so that an adapter
member runs on llama.cpp over the base model's GGUF file as the package ships it.

What llama.cpp's own ``convert_lora_to_gguf.py`` writes, for the architectures of the embedded
models (Qwen2, Llama/SmolLM2, Gemma 3), without the base model's Hugging Face folder:

- a tensor ``blk.N.<module>.weight.lora_a`` (rank x in) and ``...lora_b`` (out x rank) per adapted
  linear layer, named as the base GGUF names the layer;
- for Llama, the rows of the query and key updates reordered as llama.cpp's converter reorders the
  base weights for its rotary embedding;
- peft's scaling (``lora_alpha / r``, or ``/ sqrt(r)`` with rsLoRA; ``r`` each update's own rank,
  ``alpha_pattern`` matched as peft matches it) folded into ``lora_b``, and
  ``adapter.lora.alpha = 0`` (llama.cpp then scales by 1).

The file is written once per adapter content and base file, under the model cache.
"""
import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from ..errors import Errors
from .protocol import ModelLoadError

logger = logging.getLogger("spacy_el4ner")

# peft module name -> the name of the same linear layer in llama.cpp's GGUF files
MODULES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
# architectures whose query/key rows llama.cpp's converter reorders (LlamaModel.permute)
PERMUTED = {"llama"}
_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


def _permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's reordering of a query/key weight's rows (its converter's ``LlamaModel.permute``)."""
    return rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _scaling(config: Dict[str, Any], module_path: str, rank: int) -> float:
    """peft's scaling of one module's update: its alpha (``alpha_pattern`` matched as peft matches
    it, against the end of the module's path) over its rank (over its square root with rsLoRA)."""
    alpha = config.get("lora_alpha", rank)
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module_path):
            alpha = value
            break
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _base_info(base: Path) -> Tuple[str, Dict[str, Tuple[int, ...]], int, int]:
    """RETURNS: The base GGUF's architecture, its tensor shapes (ggml order: in, out), and its
    attention head counts (query, key/value)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(base))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        return bytes(value).decode("utf-8") if f.types and f.types[0].name == "STRING" else int(value[0])

    arch = field("general.architecture")
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    n_head = field(f"{arch}.attention.head_count") or 0
    n_kv = field(f"{arch}.attention.head_count_kv") or n_head
    return arch, shapes, n_head, n_kv


def convert(adapter: Path, base: Path, out: Path) -> Path:
    """Write ``adapter`` (a peft LoRA folder) for the base model in ``base`` (a GGUF file) to
    ``out`` as a llama.cpp LoRA GGUF. RAISES ModelLoadError: what this adapter has that llama.cpp's
    LoRA cannot hold (DoRA, biases, whole saved modules, embeddings), or a layer the base lacks."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora") or config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise ModelLoadError(Errors.E141.format(adapter=adapter))
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    updates: Dict[str, Dict[str, np.ndarray]] = {}  # GGUF layer name -> {"A": ..., "B": ...}
    sources: Dict[str, Tuple[str, str]] = {}  # GGUF layer name -> (peft module, its path)
    for key, value in weights.items():
        m = _KEY.search(key)
        if m is None or m.group(2) not in MODULES:
            raise ModelLoadError(Errors.E142.format(adapter=adapter, key=key, modules=", ".join(MODULES)))
        layer, module, side = m.groups()
        name = f"blk.{layer}.{MODULES[module]}.weight"
        updates.setdefault(name, {})[side] = value.astype(np.float32)
        sources[name] = (module, key[: m.end(2)])
    arch, shapes, n_head, n_kv = _base_info(base)
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)
    for name, pair in sorted(updates.items()):
        module, path = sources[name]
        a, b = pair.get("A"), pair.get("B")
        base_shape = shapes.get(name)
        if a is None or b is None or base_shape is None or base_shape[:2] != (a.shape[1], b.shape[0]):
            raise ModelLoadError(Errors.E143.format(adapter=adapter, name=name, base=base.name, shape=base_shape))
        b = b * np.float32(_scaling(config, path, a.shape[0]))
        if arch in PERMUTED and module in ("q_proj", "k_proj"):
            b = _permute(b, n_head if module == "q_proj" else n_kv)
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def lora_gguf(adapter: str, base: Path, cache_dir: Path) -> Path:
    """RETURNS (Path): The llama.cpp LoRA GGUF of the peft ``adapter`` over ``base``, converted on
    first use and kept in ``cache_dir`` (named by the adapter's content and the base file)."""
    folder = Path(adapter).expanduser()
    files = [folder / "adapter_config.json", folder / "adapter_model.safetensors"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ModelLoadError(Errors.E140.format(adapter=adapter, missing=", ".join(missing)))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    digest.update(f"{base.name}\t{base.stat().st_size}".encode("utf-8"))  # conversion reads the base's layout
    target = cache_dir / f"lora-{digest.hexdigest()[:20]}.gguf"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        logger.info("Converting adapter %s to a llama.cpp LoRA for %s", adapter, base.name)
        convert(folder, base, partial)
        partial.rename(target)
    return target
