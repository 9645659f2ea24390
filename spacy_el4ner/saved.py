"""Reading the component's saved settings (its ``cfg``) back, checked: a damaged file gives a coded
error that names it."""
from pathlib import Path
from typing import Any, Dict, Union

import srsly

from .errors import Errors


def read_cfg(path: Path) -> Dict[str, Any]:
    """The component's saved settings (its ``cfg`` file), or an error that names the file."""
    try:
        cfg = srsly.read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(Errors.E303.format(path=path, err=err)) from err
    if not isinstance(cfg, dict):
        raise ValueError(Errors.E304.format(path=path, type=type(cfg).__name__))
    check_cfg(cfg, path)
    return cfg


def check_cfg(cfg: Dict[str, Any], where: Union[str, Path]) -> None:
    """RAISES ValueError: E321 when the saved labels are not strings or the descriptions not label -> text."""
    labels = cfg.get("labels", [])
    descriptions = cfg.get("label_descriptions", {})
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise ValueError(Errors.E321.format(path=where, key="labels", value=labels))
    if not isinstance(descriptions, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in descriptions.items()):
        raise ValueError(Errors.E321.format(path=where, key="label_descriptions", value=descriptions))


def cfg_from_bytes(data: bytes) -> Dict[str, Any]:
    """The component's settings from ``to_bytes``, checked. RAISES ValueError: E304 / E321."""
    cfg = srsly.json_loads(data)
    if not isinstance(cfg, dict):
        raise ValueError(Errors.E304.format(path="the bytes' cfg", type=type(cfg).__name__))
    check_cfg(cfg, "the bytes' cfg")
    return cfg
