"""Versioned prompt templates (Jinja files beside this module).

A template renders a chat: ``{{ turn("system") }}``, ``{{ turn("user") }}`` and
``{{ turn("assistant") }}`` start the messages (multi-turn demonstrations work far better with
small instruct models than examples pasted into one message). Text from documents is cleaned of
the two control characters the turn markers use, so input cannot forge a turn.
"""
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

import jinja2

from ..errors import Errors

TEMPLATE_DIR = Path(__file__).parent
_SEP = "\x1e"
_END = "\x1f"
ROLES = ("system", "user", "assistant")
Messages = List[Dict[str, str]]


def _json(value: Any) -> str:
    # Not Jinja's tojson: that escapes <, >, & and ' as \u003c..., which models copy verbatim.
    return json.dumps(value, ensure_ascii=False)


def _turn(role: str) -> str:
    if role not in ROLES:
        raise ValueError(Errors.E701.format(roles=ROLES, role=role))
    return f"{_SEP}{role}{_END}"


def clean(text: str) -> str:
    """Remove the turn-marker characters from document text."""
    return text.replace(_SEP, " ").replace(_END, " ")


@lru_cache(maxsize=None)
def _env(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([folder, str(TEMPLATE_DIR)]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["json"] = _json
    env.globals["turn"] = _turn
    return env


def _clean_all(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: _clean_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean_all(v) for v in value) if isinstance(value, list) else tuple(_clean_all(v) for v in value)
    return value


def render(name: str, folder: str = "", **context: Any) -> Messages:
    """Render a prompt template into chat messages.

    name (str): File name, e.g. "extract.v1.jinja", looked up in ``folder`` and then here.
    folder (str): An extra folder of user templates (optional).
    RETURNS (List[Dict[str, str]]): The messages ({"role", "content"}), in order.
    """
    try:
        template = _env(folder or str(TEMPLATE_DIR)).get_template(name)
    except jinja2.TemplateNotFound as err:
        raise ValueError(Errors.E704.format(name=name, folder=folder or TEMPLATE_DIR, known=", ".join(sorted(p.name for p in TEMPLATE_DIR.glob("*.jinja"))))) from err
    text = template.render(**_clean_all(context))
    messages: Messages = []
    for chunk in text.split(_SEP):
        if _END not in chunk:
            if chunk.strip():
                raise ValueError(Errors.E702.format(name=name, text=chunk[:60]))
            continue
        role, content = chunk.split(_END, 1)
        messages.append({"role": role, "content": content.strip()})
    if not messages or messages[-1]["role"] != "user":
        raise ValueError(Errors.E703.format(name=name))
    return messages
