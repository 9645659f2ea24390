"""Read labelled data into Docs: token/BIO files (CoNLL, WNUT-17, CrossNER, NCBI), Prodigy-style
JSONL (``text`` + ``spans``) and ``.spacy`` DocBin files."""
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from .errors import Errors, Warnings

logger = logging.getLogger("spacy_el4ner")

FORMATS = ("auto", "bio", "jsonl", "spacy")
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_bio_sentences(
    path: Union[str, Path], skipped: Optional[List["Skipped"]] = None
) -> Iterator[Tuple[List[str], List[str]]]:
    """Sentences of a token-per-line file: ``TOKEN<TAB>TAG`` (or whitespace-separated, tag last).
    Any line that is empty after stripping (WNUT-17 uses tab-only lines) ends a sentence;
    ``-DOCSTART-`` lines are skipped. A sentence with a line that is not valid UTF-8 or not
    ``TOKEN TAG`` is skipped whole and reported (``skipped``, and a warning)."""
    words: List[str] = []
    tags: List[str] = []
    bad: Optional[Tuple[int, str]] = None
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = bad or (lineno, f"invalid UTF-8 ({err.reason} at byte {err.start})")
                continue
            if not line.strip():
                if bad:
                    _skip(skipped, path, bad[0], f"sentence left out: {bad[1]}")
                elif words:
                    yield words, tags
                words, tags, bad = [], [], None
                continue
            parts = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            parts = [p for p in parts if p.strip()] if len(parts) > 2 else parts
            if len(parts) < 2:
                bad = bad or (lineno, f"expected 'TOKEN<TAB>TAG', got {line.strip()[:60]!r}")
                continue
            if parts[0].startswith("-DOCSTART-"):
                continue
            tag = parts[-1].strip()
            if "-" in tag and not tag.split("-", 1)[1].strip():
                bad = bad or (lineno, f"tag {tag!r} has no label after its '-'")
                continue
            words.append(parts[0].strip())
            tags.append(tag)
    if bad:
        _skip(skipped, path, bad[0], f"sentence left out: {bad[1]}")
    elif words:
        yield words, tags


def fix_iob(tags: List[str]) -> List[str]:
    """Make tags valid IOB: a stray I-X (after O or another type) starts an entity."""
    out: List[str] = []
    prev = "O"
    for tag in tags:
        if tag in ("O", "", "_"):
            out.append("O")
        elif "-" not in tag:
            out.append("I-" + tag if prev in ("B-" + tag, "I-" + tag) else "B-" + tag)
        else:
            prefix, label = tag.split("-", 1)
            if prefix in ("B", "S", "U"):
                out.append("B-" + label)
            elif prefix in ("I", "E", "L") and prev.endswith("-" + label) and prev != "O":
                out.append("I-" + label)
            else:
                out.append("B-" + label)
        prev = out[-1]
    return out


def bio_to_doc(vocab: Vocab, words: List[str], tags: List[str]) -> Doc:
    words = [w if w else "_" for w in words]
    return Doc(vocab, words=words, ents=fix_iob(tags))


def read_bio(path: Union[str, Path], vocab: Vocab, skipped: Optional[List["Skipped"]] = None) -> Iterator[Doc]:
    for words, tags in read_bio_sentences(path, skipped):
        yield bio_to_doc(vocab, words, tags)


class Skipped(NamedTuple):
    """A record the readers left out whole: where, and why."""

    path: str
    line: int
    reason: str


def _skip(skipped: Optional[List[Skipped]], path: Union[str, Path], line: int, reason: str) -> None:
    logger.warning(Warnings.W005.format(path=path, line=line, reason=reason))
    if skipped is not None:
        skipped.append(Skipped(str(path), line, reason))


def _span_error(sp: Any, n_chars: int, labels: Optional[Sequence[str]]) -> Optional[str]:
    if not isinstance(sp, dict):
        return f"a span that is not an object: {str(sp)[:60]!r}"
    for key in ("start", "end"):
        if isinstance(sp.get(key), bool) or not isinstance(sp.get(key), int):
            return f"span {key} is not an integer: {str(sp.get(key))[:40]!r}"
    if not isinstance(sp.get("label"), str) or not sp["label"].strip():
        return f"a span without a label: {str(sp)[:60]!r}"
    if not 0 <= sp["start"] < sp["end"] <= n_chars:
        return f"span [{sp['start']}, {sp['end']}) is outside the text of {n_chars} characters or empty"
    if labels is not None and sp["label"] not in labels:
        return f"unknown label {sp['label']!r} (labels: {', '.join(labels)})"
    return None


def read_jsonl(
    path: Union[str, Path], nlp: Language, skipped: Optional[List[Skipped]] = None, labels: Optional[Sequence[str]] = None,
) -> Iterator[Doc]:
    """Prodigy-style JSONL: ``{"text": ..., "spans": [{"start", "end", "label"}], "answer"}``.
    Rejected and ignored answers are left out. A line that cannot be read exactly is skipped
    *whole* and reported (``skipped``, and a warning): invalid UTF-8, not JSON, no text, a lone
    surrogate, a span that is malformed, out of range, not on token boundaries, overlapping, or
    (with ``labels``) of an unknown label. A sentence stored without one of its entities would teach
    the model that it is none."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")  # a byte-order mark may start the file
            except UnicodeDecodeError as err:
                _skip(skipped, path, n, f"invalid UTF-8 ({err.reason} at byte {err.start})")
                continue
            try:
                eg = json.loads(line)
            except ValueError as err:
                _skip(skipped, path, n, f"not JSON ({err})")
                continue
            if not isinstance(eg, dict) or not isinstance(eg.get("text"), str):
                _skip(skipped, path, n, "no 'text' string")
                continue
            answer = eg.get("answer", "accept")
            if answer not in ("accept", "reject", "ignore"):
                _skip(skipped, path, n, f"'answer' must be accept, reject or ignore, not {answer!r}")
                continue
            if answer != "accept":
                continue
            text = eg["text"]
            if _SURROGATE.search(text):
                _skip(skipped, path, n, "the text holds a lone surrogate (not valid Unicode)")
                continue
            spans = eg.get("spans") or []
            problem = "'spans' is not a list" if not isinstance(spans, list) else None
            for sp in spans if problem is None else []:
                problem = _span_error(sp, len(text), labels)
                if problem:
                    break
            if problem:
                _skip(skipped, path, n, problem)
                continue
            doc = nlp.make_doc(text)
            ents = []
            for sp in spans:
                span = doc.char_span(sp["start"], sp["end"], label=sp["label"])
                if span is None:
                    problem = f"span [{sp['start']}, {sp['end']}) {text[sp['start']:sp['end']]!r} is not on token boundaries"
                    break
                ents.append(span)
            if not problem:
                try:
                    doc.set_ents(ents)
                except ValueError:
                    problem = "overlapping spans"
            if problem:
                _skip(skipped, path, n, problem)
                continue
            yield doc


def read_docs(
    path: Union[str, Path], nlp: Language, fmt: str = "auto", skipped: Optional[List[Skipped]] = None,
    labels: Optional[Sequence[str]] = None,
) -> List[Doc]:
    """Read Docs from a file or a folder of files in any supported format.

    fmt (str): "auto" (by extension: .spacy, .jsonl; anything else is token/BIO), "bio",
        "jsonl" or "spacy".
    skipped (Optional[List[Skipped]]): Collects the JSONL lines left out whole, with the reason.
    labels (Optional[Sequence[str]]): JSONL lines with other labels are left out.
    """
    if fmt not in FORMATS:
        raise ValueError(Errors.E319.format(options=FORMATS, value=fmt))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(Errors.E320.format(path=path))
    if path.is_dir():
        docs: List[Doc] = []
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            docs.extend(read_docs(child, nlp, fmt, skipped, labels))
        return docs
    kind = fmt
    if kind == "auto":
        kind = {".spacy": "spacy", ".jsonl": "jsonl"}.get(path.suffix, "bio")
    if kind == "spacy":
        try:
            return list(DocBin().from_disk(path).get_docs(nlp.vocab))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(Errors.E324.format(path=path, err=err)) from err
    if kind == "jsonl":
        return list(read_jsonl(path, nlp, skipped, labels))
    return list(read_bio(path, nlp.vocab, skipped))


def map_labels(docs: List[Doc], mapping: Callable[[str], Optional[str]]) -> List[Doc]:
    """Rename (or drop, when ``mapping`` returns None) entity labels in place."""
    from spacy.tokens import Span

    for doc in docs:
        ents = []
        for e in doc.ents:
            new = mapping(e.label_)
            if new:
                ents.append(Span(doc, e.start, e.end, label=new))
        doc.ents = ents
    return docs
