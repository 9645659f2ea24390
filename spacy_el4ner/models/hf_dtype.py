"""Weight types of the transformers engine: which dtype is fastest where, and int8 weights."""
import functools
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import Errors
from .protocol import ModelLoadError

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
        raise ModelLoadError(Errors.E126.format(version=torch.__version__)) from err
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("x86", "fbgemm") if e in engines), None)
    if engine is None:
        raise ModelLoadError(Errors.E127.format(engines=engines))
    torch.backends.quantized.engine = engine
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith(tuple(keep_float))
    }
    with warnings.catch_warnings():  # one deprecation notice per layer, about torch, not about the user's setting
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated", category=UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
