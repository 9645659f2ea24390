"""Sources of texts: JSONL, plain text and .spacy; unreadable lines are skipped and reported."""
import pytest
import spacy
from spacy.tokens import DocBin

from spacy_el4ner.annotate.sources import read_texts


def test_txt_with_bad_lines(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_bytes(b"Tim Cook visited Berlin.\n\nBad \xff byte\n  Paris is big.  \n")
    skipped = []
    got = list(read_texts(path, skipped))
    assert got == [("Tim Cook visited Berlin.", {"source": "texts.txt", "line": 1}), ("Paris is big.", {"source": "texts.txt", "line": 4})]
    assert [(s.line, s.reason.split(" (")[0]) for s in skipped] == [(3, "invalid UTF-8")]


def test_jsonl_with_bad_lines(tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_bytes(b"\n".join([
        b'{"text": "Tim Cook visited Berlin.", "meta": {"id": 7}}',
        b'{"text": "lone \\ud800 surrogate"}',
        b'not json',
        b'{"txt": "no text"}',
        b'{"text": "Bad \xff byte"}',
        b'["a list"]',
        b'{"text": "Paris is big."}',
    ]) + b"\n")
    skipped = []
    got = list(read_texts(path, skipped))
    assert [t for t, _ in got] == ["Tim Cook visited Berlin.", "Paris is big."]
    assert got[0][1] == {"id": 7, "source": "texts.jsonl", "line": 1}
    assert [s.line for s in skipped] == [2, 3, 4, 5, 6]
    assert "lone surrogate" in skipped[0].reason and "not JSON" in skipped[1].reason


def test_spacy_docbin(tmp_path):
    nlp = spacy.blank("en")
    path = tmp_path / "docs.spacy"
    DocBin(docs=[nlp("One text."), nlp("Another one.")]).to_disk(path)
    assert [t for t, _ in read_texts(path)] == ["One text.", "Another one."]


def test_missing_or_unknown_files_fail_at_once(tmp_path):
    with pytest.raises(FileNotFoundError, match="E402"):
        read_texts(tmp_path / "nope.txt")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"E401.*\.jsonl"):
        read_texts(tmp_path / "data.csv")
