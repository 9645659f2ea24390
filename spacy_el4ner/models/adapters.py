"""Adapters travel with a saved pipeline: ``nlp.to_disk`` copies each member's (LoRA / CLLMFS)
adapter folder into the component's folder, and ``spacy.load`` points the member at that copy,
so the pipeline loads on another machine or from another working directory."""
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

from ..errors import Errors

logger = logging.getLogger("spacy_el4ner")

# What an adapter folder written by ``finetune`` holds at its top level (checkpoints are not copied).
_SUFFIXES = (".json", ".safetensors", ".model", ".txt")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "member"


def save_adapters(members: Mapping[str, Any], path: Path) -> None:
    """Copy the adapter of every member that has one to ``path / <member slug>``.

    members (Mapping[str, Any]): Member name -> model; models without an ``adapter`` attribute are skipped.
    path (Path): The component's ``adapters`` folder (created only when a member has an adapter).
    """
    for name, model in members.items():
        adapter = getattr(model, "adapter", None)
        if not adapter:
            continue
        source = Path(adapter)
        if not (source / "adapter_config.json").is_file():
            logger.warning(
                "Member %s names adapter %s, which has no adapter_config.json: the saved pipeline "
                "refers to it by path and needs it there when it loads", name, adapter,
            )
            continue
        target = path / _slug(name)
        if target.resolve() == source.resolve():
            continue  # saving over the folder it was loaded from
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for f in source.iterdir():
            if f.is_file() and f.suffix in _SUFFIXES:
                shutil.copy2(f, target / f.name)


def load_adapters(members: Mapping[str, Any], path: Path) -> None:
    """Point every member with an adapter at its copy under ``path``, where ``save_adapters`` put
    one, else at the folder of its config if that still holds the adapter.
    RAISES ValueError: E323 when neither holds it (the member could not load later).

    members (Mapping[str, Any]): Member name -> model (not loaded yet: loading is lazy).
    path (Path): The component's ``adapters`` folder.
    """
    for name, model in members.items():
        if not getattr(model, "adapter", None):
            continue
        copy = path / _slug(name)
        if (copy / "adapter_config.json").is_file():
            model.adapter = str(copy)
        elif not (Path(model.adapter) / "adapter_config.json").is_file():
            raise ValueError(Errors.E323.format(name=name, copy=copy, source=model.adapter))
