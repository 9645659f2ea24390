import logging

import pytest
import srsly
from spacy.tokens import DocBin

from spacy_el4ner.readers import fix_iob, map_labels, read_bio_sentences, read_docs, read_jsonl

from conftest import make_doc


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_fix_iob():
    assert fix_iob(["O", "I-PER", "I-PER", "O"]) == ["O", "B-PER", "I-PER", "O"]
    assert fix_iob(["B-PER", "I-LOC"]) == ["B-PER", "B-LOC"]
    assert fix_iob(["S-PER", "U-LOC", "E-LOC", "L-LOC"]) == ["B-PER", "B-LOC", "I-LOC", "I-LOC"]
    assert fix_iob(["", "_", "O"]) == ["O", "O", "O"]
    # IO tags without a prefix: a run of one type is one entity
    assert fix_iob(["PER", "PER", "LOC", "O", "LOC"]) == ["B-PER", "I-PER", "B-LOC", "O", "B-LOC"]
    assert fix_iob(["B-corporation", "I-corporation"]) == ["B-corporation", "I-corporation"]


def test_bio_file(tmp_path, nlp):
    path = tmp_path / "train.txt"
    path.write_text(
        "-DOCSTART-\tO\n\n"
        "Tim\tB-PER\nCook\tI-PER\nvisited\tO\nParis\tB-LOC\n\t\n"  # WNUT-17: a tab-only line ends it
        "Apple B-ORG\nrocks O\n\n\n"
        "New\tI-LOC\nYork\tI-LOC\n",
        encoding="utf8",
    )
    sents = list(read_bio_sentences(path))
    assert [w for w, _ in sents] == [["Tim", "Cook", "visited", "Paris"], ["Apple", "rocks"], ["New", "York"]]
    docs = read_docs(path, nlp)
    assert [ents(d) for d in docs] == [
        [("Tim Cook", "PER"), ("Paris", "LOC")],
        [("Apple", "ORG")],
        [("New York", "LOC")],
    ]


def test_bio_sentences_with_a_bad_line_are_skipped_whole(tmp_path, nlp):
    path = tmp_path / "bad.bio"
    path.write_bytes(b"Tim\tB-PER\nlonely\n\nParis\tB-LOC\n\ncaf\xe9\tO\nRome\tB-LOC\n\nEgypt\tB-LOC\n")
    skipped = []
    docs = read_docs(path, nlp, skipped=skipped)
    assert [d.text.strip() for d in docs] == ["Paris", "Egypt"]
    assert [(s.line, s.reason.split(":")[1].split("(")[0].strip()) for s in skipped] == [
        (2, "expected 'TOKEN<TAB>TAG', got 'lonely'"), (6, "invalid UTF-8")
    ]


def test_jsonl(tmp_path, nlp, caplog):
    path = tmp_path / "data.jsonl"
    srsly.write_jsonl(
        path,
        [
            {"text": "Tim Cook visited Paris.", "spans": [{"start": 0, "end": 8, "label": "PER"}, {"start": 17, "end": 22, "label": "LOC"}]},
            {"text": "Rejected one.", "spans": [], "answer": "reject"},
            {"text": "Apple pie", "spans": [{"start": 1, "end": 3, "label": "ORG"}], "answer": "accept"},
            {"text": "No spans here."},
        ],
    )
    skipped = []
    with caplog.at_level(logging.WARNING, logger="spacy_el4ner"):
        docs = read_docs(path, nlp, skipped=skipped)
    # the misaligned span's sentence is left out whole: stored without it, "Apple" would be taught as no entity
    assert [d.text for d in docs] == ["Tim Cook visited Paris.", "No spans here."]
    assert ents(docs[0]) == [("Tim Cook", "PER"), ("Paris", "LOC")]
    assert [(s.line, s.reason.split(" ")[0]) for s in skipped] == [(3, "span")]
    assert "not on token boundaries" in caplog.text


GOOD = '{"text": "Tim Cook visited Paris.", "spans": [{"start": 0, "end": 8, "label": "PER"}]}'
BAD_LINES = {
    b'{"spans": []}': "no 'text' string",
    b'{"text": "Tim Cook", "spans": [{"start": 0, "end": 8, "label": "PER"}, {"start": 4, "end": 8, "label": "X"}]}': "overlapping spans",
    b'{"text": "Tim Cook", "spans": [{"start": "0", "end": 8, "label": "PER"}]}': "span start is not an integer",
    b'{"text": "Tim Cook", "spans": [{"start": 0, "end": 8}]}': "a span without a label",
    b'{"text": "Tim Cook", "spans": [{"start": 0, "end": 80, "label": "PER"}]}': "outside the text",
    b'{"text": "Tim Cook", "spans": [{"start": 5, "end": 2, "label": "PER"}]}': "outside the text",
    b'{"text": "Tim Cook", "spans": [{"start": true, "end": 8, "label": "PER"}]}': "span start is not an integer",
    b'{"text": "Tim Cook", "spans": "Tim"}': "'spans' is not a list",
    b'{"text": "Tim Cook", "spans": ["Tim"]}': "a span that is not an object",
    b'{"text": "Tim \\ud800 Cook", "spans": []}': "lone surrogate",
    b'{"text": "Tim Cook", "spans": [{"start": 0, "end": 8, "label": "ANIMAL"}]}': "unknown label",
    b'{"text": "caf\xe9 \xff"}': "invalid UTF-8",
    b'{"text": "Tim Cook"': "not JSON",
    b'["Tim Cook"]': "no 'text' string",
}


def test_jsonl_bad_lines_are_skipped_whole_and_reported(tmp_path, nlp):
    path = tmp_path / "mixed.jsonl"
    lines = [GOOD.encode()] + list(BAD_LINES) + [b"", GOOD.encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    skipped = []
    docs = read_docs(path, nlp, skipped=skipped, labels=["PER", "LOC", "X"])
    assert [d.text for d in docs] == ["Tim Cook visited Paris."] * 2
    assert [s.line for s in skipped] == list(range(2, 2 + len(BAD_LINES)))
    for sk, want in zip(skipped, BAD_LINES.values()):
        assert want in sk.reason, (sk, want)
    # without a collector: skipped with warnings only; without labels, any label is kept
    assert [d.text for d in read_jsonl(path, nlp)] == ["Tim Cook visited Paris.", "Tim Cook", "Tim Cook visited Paris."]


def test_spacy_files_and_folders(tmp_path, nlp, labelled_docs):
    folder = tmp_path / "data"
    folder.mkdir()
    DocBin(docs=labelled_docs[:2]).to_disk(folder / "a.spacy")
    (folder / "b.bio").write_text("Egypt\tB-LOC\n", encoding="utf8")
    docs = read_docs(folder, nlp)
    assert [d.text.strip() for d in docs] == [labelled_docs[0].text, labelled_docs[1].text, "Egypt"]
    assert ents(docs[0]) == ents(labelled_docs[0])
    assert len(read_docs(folder / "a.spacy", nlp, fmt="spacy")) == 2
    with pytest.raises(ValueError, match="format must be one of"):
        read_docs(folder, nlp, fmt="csv")
    with pytest.raises(FileNotFoundError):
        read_docs(tmp_path / "missing", nlp)


def test_map_labels(nlp):
    doc = make_doc(nlp, "Tim Cook visited Paris.", [("Tim Cook", "person"), ("Paris", "location")])
    map_labels([doc], {"person": "PER"}.get)
    assert ents(doc) == [("Tim Cook", "PER")]
    map_labels([doc], str.lower)
    assert ents(doc) == [("Tim Cook", "per")]
