"""``store build`` on data with bad records: they are skipped whole and reported, the rest is
stored; ``--strict`` stops with exit 1 and writes nothing. Uses the tiny random BERT as encoder."""
from typer.testing import CliRunner

from spacy_el4ner.cli import app
from spacy_el4ner.store import DemoStore

LINES = [
    b'{"text": "Tim Cook visited Paris.", "spans": [{"start": 0, "end": 8, "label": "PER"}, {"start": 17, "end": 22, "label": "LOC"}]}',
    b'{"text": "Apple pie", "spans": [{"start": 1, "end": 3, "label": "ORG"}]}',
    b'{"text": "Bad \xff byte"}',
    b'{"text": "Tim Cook", "spans": [{"start": "x", "end": 8, "label": "PER"}]}',
    b'{"text": "Angela Merkel met Macron.", "spans": [{"start": 0, "end": 13, "label": "PER"}]}',
]


def test_store_build_skips_bad_records_whole(tmp_path, tiny_bert_path, nlp):
    src = tmp_path / "data.jsonl"
    src.write_bytes(b"\n".join(LINES) + b"\n")
    out = tmp_path / "store"
    res = CliRunner().invoke(app, ["store", "build", str(src), "-o", str(out), "--encoder", tiny_bert_path])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "3 record(s) skipped whole, 2 read" in text
    assert "data.jsonl:2" in text and "data.jsonl:3" in text and "data.jsonl:4" in text
    store = DemoStore(nlp.vocab).from_disk(out)
    assert [d.text for d in store.docs] == ["Tim Cook visited Paris.", "Angela Merkel met Macron."]
    strict = tmp_path / "strict"
    res = CliRunner().invoke(app, ["store", "build", str(src), "-o", str(strict), "--encoder", tiny_bert_path, "--strict"])
    assert res.exit_code == 1 and not strict.exists()
