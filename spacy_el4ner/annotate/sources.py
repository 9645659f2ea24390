"""Texts to annotate: JSONL (``{"text": ..., "meta": {...}}`` a line), plain text (one text a
line) or a ``.spacy`` DocBin. A line that cannot be read exactly (invalid UTF-8, a lone surrogate,
not JSON, no text) is skipped and reported, never a crash."""
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from spacy.tokens import DocBin
from spacy.vocab import Vocab

from ..errors import Errors, Warnings
from ..readers import Skipped

logger = logging.getLogger("spacy_el4ner")

_SURROGATE = re.compile("[\ud800-\udfff]")
SUFFIXES = (".jsonl", ".txt", ".spacy")

Text = Tuple[str, Dict[str, Any]]  # (text, meta)


def _skip(skipped: Optional[List[Skipped]], path: Path, line: int, reason: str) -> None:
    logger.warning(Warnings.W005.format(path=path, line=line, reason=reason))
    if skipped is not None:
        skipped.append(Skipped(str(path), line, reason))


def _lines(path: Path, skipped: Optional[List[Skipped]]) -> Iterator[Tuple[int, str]]:
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield n, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                _skip(skipped, path, n, f"invalid UTF-8 ({err.reason} at byte {err.start})")


def read_texts(path: Union[str, Path], skipped: Optional[List[Skipped]] = None) -> Iterator[Text]:
    """``(text, meta)`` pairs, read lazily; ``meta`` holds the source's ``meta`` and where the text
    came from. RAISES (FileNotFoundError, ValueError): at once, for a missing file or another format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(Errors.E402.format(path=path))
    if path.suffix not in SUFFIXES:
        raise ValueError(Errors.E401.format(path=path, suffix=path.suffix))
    return _read(path, skipped)


def _read(path: Path, skipped: Optional[List[Skipped]]) -> Iterator[Text]:
    if path.suffix == ".spacy":
        for i, doc in enumerate(DocBin().from_disk(path).get_docs(Vocab())):
            if doc.text.strip():
                yield doc.text, {"source": path.name, "line": i + 1}
        return
    for n, line in _lines(path, skipped):
        meta: Dict[str, Any] = {"source": path.name, "line": n}
        if path.suffix == ".jsonl":
            try:
                eg = json.loads(line)
            except ValueError as err:
                _skip(skipped, path, n, f"not JSON ({err})")
                continue
            if not isinstance(eg, dict) or not isinstance(eg.get("text"), str) or not eg["text"].strip():
                _skip(skipped, path, n, "no 'text' string")
                continue
            if isinstance(eg.get("meta"), dict):
                meta = {**eg["meta"], **meta}
            text = eg["text"]
        else:
            text = line.strip()
        if _SURROGATE.search(text):
            _skip(skipped, path, n, "the text holds a lone surrogate (not valid Unicode)")
            continue
        yield text, meta
