"""Read labelled data into Docs: token/BIO files (CoNLL, WNUT-17, CrossNER, NCBI), Prodigy-style
JSONL (``text`` + ``spans``) and ``.spacy`` DocBin files."""
import logging
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

logger = logging.getLogger("spacy_el4ner")

FORMATS = ("auto", "bio", "jsonl", "spacy")


def read_bio_sentences(path: Union[str, Path]) -> Iterator[Tuple[List[str], List[str]]]:
    """Sentences of a token-per-line file: ``TOKEN<TAB>TAG`` (or whitespace-separated, tag last).
    Any line that is empty after stripping (WNUT-17 uses tab-only lines) ends a sentence;
    ``-DOCSTART-`` lines are skipped."""
    words: List[str] = []
    tags: List[str] = []
    with open(path, encoding="utf8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                if words:
                    yield words, tags
                words, tags = [], []
                continue
            parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
            parts = [p for p in parts if p.strip()] if len(parts) > 2 else parts
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'TOKEN<TAB>TAG', got {line.strip()[:60]!r}")
            if parts[0].startswith("-DOCSTART-"):
                continue
            words.append(parts[0].strip())
            tags.append(parts[-1].strip())
    if words:
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


def read_bio(path: Union[str, Path], vocab: Vocab) -> Iterator[Doc]:
    for words, tags in read_bio_sentences(path):
        yield bio_to_doc(vocab, words, tags)


def read_jsonl(path: Union[str, Path], nlp: Language) -> Iterator[Doc]:
    """Prodigy-style JSONL: ``{"text": ..., "spans": [{"start", "end", "label"}], "answer"}``.
    Rejected and ignored answers are skipped; spans that do not align to tokens are skipped with
    a warning."""
    for i, eg in enumerate(srsly.read_jsonl(path)):
        if not isinstance(eg, dict) or not isinstance(eg.get("text"), str):
            raise ValueError(f"{path}: line {i + 1} has no 'text' string")
        if eg.get("answer", "accept") != "accept":
            continue
        doc = nlp.make_doc(eg["text"])
        ents = []
        for sp in eg.get("spans") or []:
            span = doc.char_span(int(sp["start"]), int(sp["end"]), label=str(sp["label"]), alignment_mode="contract")
            if span is None or len(span) == 0:
                logger.warning("%s: line %d: span %r does not align to tokens; skipped", path, i + 1, sp)
                continue
            ents.append(span)
        try:
            doc.set_ents(ents)
        except ValueError as err:
            raise ValueError(f"{path}: line {i + 1}: overlapping spans: {err}") from err
        yield doc


def read_docs(path: Union[str, Path], nlp: Language, fmt: str = "auto") -> List[Doc]:
    """Read Docs from a file or a folder of files in any supported format.

    fmt (str): "auto" (by extension: .spacy, .jsonl; anything else is token/BIO), "bio",
        "jsonl" or "spacy".
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.is_dir():
        docs: List[Doc] = []
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            docs.extend(read_docs(child, nlp, fmt))
        return docs
    kind = fmt
    if kind == "auto":
        kind = {".spacy": "spacy", ".jsonl": "jsonl"}.get(path.suffix, "bio")
    if kind == "spacy":
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    if kind == "jsonl":
        return list(read_jsonl(path, nlp))
    return list(read_bio(path, nlp.vocab))


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
