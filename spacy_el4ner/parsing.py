"""Defensive parsing of model output. LLM output is data: it is never evaluated."""
import json
import logging
import re
from typing import List, Tuple

logger = logging.getLogger("spacy_el4ner")

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_MAX_ITEM_CHARS = 200


def parse_list(answer: str, prefix: str = "[") -> Tuple[List[str], bool]:
    """Parse an answer that should be a JSON list of strings.

    Tolerates an unterminated list, single quotes, code fences, numbered or bulleted lines
    and items that are [text, label] pairs (the text is kept).

    answer (str): The model's answer (without the forced prefix).
    prefix (str): The forced start of the answer, put back before parsing.
    RETURNS (Tuple[List[str], bool]): The strings (stripped, de-duplicated, in order) and
        whether the answer was well-formed JSON.
    """
    text = (prefix + answer).strip()
    text = re.sub(r"^```(?:json)?", "", text).strip()
    text = text.split("```")[0].strip()
    items: List[str] = []
    well_formed = False
    candidates = [text]
    if text.startswith("[") and not text.rstrip().endswith("]"):
        candidates.append(text.rstrip().rstrip(",") + "]")
        candidates.append(text.rstrip().rstrip(",") + '"]')
    for cand in candidates:
        try:
            data = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, list):
            items = [_item_text(x) for x in data]
            well_formed = cand is text
            break
    else:
        quoted = [_unescape(m) for m in _QUOTED.findall(text)]
        if quoted:
            items = quoted
        else:
            body = text.strip("[]")
            if body.strip().lower() in ("", "none", "n/a", "no entities"):
                items = []
            else:
                parts = re.split(r"[\n,;]", body)
                items = [re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", p).strip(" '\"") for p in parts]
    out: List[str] = []
    for item in items:
        item = item.strip()
        if item and len(item) <= _MAX_ITEM_CHARS and item not in out:
            out.append(item)
    return out, well_formed


def _item_text(x: object) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], str):
        return x[0]
    if isinstance(x, dict):
        for k in ("text", "entity", "span", "name"):
            if isinstance(x.get(k), str):
                return x[k]
    return ""


def _unescape(s: str) -> str:
    try:
        return json.loads(f'"{s}"')
    except ValueError:
        return s
