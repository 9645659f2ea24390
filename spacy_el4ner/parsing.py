"""Defensive parsing of model output. LLM output is data: it is never evaluated."""
import json
import logging
import re
import unicodedata
from typing import List, NamedTuple, Tuple

logger = logging.getLogger("spacy_el4ner")

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_MAX_ITEM_CHARS = 200
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, every surrogate is a lone one


class Parsed(NamedTuple):
    """A parsed list answer: the strings kept, whether the answer was well-formed JSON, and what was
    left out (items longer than 200 characters, items that are not strings), as text."""

    items: List[str]
    well_formed: bool
    dropped: List[str]


def clean_text(text: str) -> str:
    """Model output made safe to store: lone surrogates (``json.loads('"\\ud800"')`` makes them)
    become U+FFFD, control characters other than tab and newline go."""
    text = _SURROGATE.sub("\ufffd", text)
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) != "Cc")


def parse_list(answer: str, prefix: str = "[") -> Tuple[List[str], bool]:
    """``parse_answer`` without what it left out: (items, well_formed)."""
    parsed = parse_answer(answer, prefix)
    return parsed.items, parsed.well_formed


def parse_answer(answer: str, prefix: str = "[") -> Parsed:
    """Parse an answer that should be a JSON list of strings.

    Tolerates an unterminated list, single quotes, code fences, numbered or bulleted lines
    and items that are [text, label] pairs (the text is kept).

    answer (str): The model's answer (without the forced prefix).
    prefix (str): The forced start of the answer, put back before parsing.
    RETURNS (Parsed): The strings (stripped, cleaned of lone surrogates and control characters,
        de-duplicated, in order), whether the answer was well-formed JSON, and the items left out.
    """
    text = (prefix + answer).strip()
    text = re.sub(r"^```(?:json)?", "", text).strip()
    text = text.split("```")[0].strip()
    items: List[str] = []
    dropped: List[str] = []
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
            dropped = [_as_text(x) for x, item in zip(data, items) if not item and x not in ("", None)]
            well_formed = cand is text
            break
    else:
        quoted = list(_QUOTED.finditer(text))
        if quoted:
            # the quoted strings; unquoted text between them (["A", B, "C"]: B) is broken output,
            # left out but listed (dropped), never silently; text before the first one and after
            # the list ends is not an item (a preamble)
            items = [_unescape(m.group(1)) for m in quoted]
            for n in range(1, len(quoted)):
                dropped.extend(_bare(text[quoted[n - 1].end() : quoted[n].start()]))
            tail = text[quoted[-1].end() :]
            if "]" in tail:
                dropped.extend(_bare(tail.split("]", 1)[0]))
        else:
            body = text.strip("[]")
            if body.strip().lower() in ("", "none", "n/a", "no entities"):
                items = []
            else:
                parts = re.split(r"[\n,;]", body)
                items = [re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", p).strip(" '\"") for p in parts]
    out: List[str] = []
    for item in items:
        item = clean_text(item).strip()
        if len(item) > _MAX_ITEM_CHARS:
            dropped.append(item)
        elif item and item not in out:
            out.append(item)
    return Parsed(out, well_formed, [clean_text(d)[: 2 * _MAX_ITEM_CHARS] for d in dropped])


def _bare(gap: str) -> List[str]:
    """Unquoted items in the text between two quoted ones (list punctuation stripped)."""
    return [p.strip(" \t'\"") for p in re.split(r"[\n,;\[\]]", gap) if p.strip(" \t'\"")]


def _as_text(x: object) -> str:
    try:
        return json.dumps(x, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(x)


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
