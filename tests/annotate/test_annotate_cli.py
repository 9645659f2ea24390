"""`annotate` (texts -> task JSONL, bad lines reported, uncertainty order) and `db-out`, whose
JSONL `store build` reads back."""
import json

import pytest
import spacy
from typer.testing import CliRunner

from spacy_el4ner.annotate.db import Database
from spacy_el4ner.annotate.tasks import input_hash, task_hash
from spacy_el4ner.cli import app as cli
from spacy_el4ner.readers import read_docs
from spacy_el4ner.store import DemoStore

from .annotate_helpers import TEXTS


@pytest.mark.slow
def test_annotate_writes_prodigy_tasks_and_reports_bad_lines(pipeline_dir, tmp_path):
    source = tmp_path / "texts.jsonl"
    lines = [json.dumps({"text": t, "meta": {"n": i}}).encode() for i, t in enumerate(TEXTS[:3])]
    lines[1:1] = [b'{"text": "lone \\udc00 surrogate"}', b"{broken", b'{"text": "Bad \xff"}']
    lines.append(json.dumps({"text": TEXTS[0]}).encode())  # a repeat
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "tasks.jsonl"
    res = CliRunner().invoke(cli, ["annotate", str(source), "--pipeline", str(pipeline_dir), "--output", str(out), "--order", "uncertainty"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "3 record(s) skipped whole" in text and "texts.jsonl:2" in text and "texts.jsonl:4" in text
    assert "1 repeated text(s) left out" in text and "3 task(s)" in text
    tasks = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert sorted(t["text"] for t in tasks) == sorted(TEXTS[:3])
    confidences = [t["meta"]["confidence"] for t in tasks]
    assert confidences == sorted(confidences)
    for task in tasks:
        assert set(task) >= {"text", "tokens", "spans", "meta", "_input_hash", "_task_hash"}
        assert task["_input_hash"] == input_hash(task["text"]) and task["_task_hash"] == task_hash(task["_input_hash"], task["spans"])
        assert task["meta"]["n"] == TEXTS.index(task["text"])
        for span in task["spans"]:
            assert task["tokens"][span["token_start"]]["start"] == span["start"]
            assert task["tokens"][span["token_end"]]["end"] == span["end"]
            assert span["label"] in ("person", "location", "corporation") and 0 < span["score"] <= 1
        assert all("votes" in c for c in task["meta"]["candidates"])


def test_annotate_refuses_other_formats(tmp_path):
    (tmp_path / "texts.csv").write_text("a,b\n")
    res = CliRunner().invoke(cli, ["annotate", str(tmp_path / "texts.csv"), "-p", str(tmp_path / "nlp"), "-o", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1 and "E401" in res.output


def test_db_out_and_store_build_read_it_back(tmp_path, tiny_bert_path):
    nlp = spacy.blank("en")
    db = Database(tmp_path / "a.db")
    sid = db.add_session("ner")
    for text, answer, spans in [
        ("Tim Cook visited Berlin.", "accept", [{"start": 0, "end": 8, "label": "person"}, {"start": 17, "end": 23, "label": "location"}]),
        ("Nothing here.", "accept", []),
        ("Apple is a fruit.", "reject", [{"start": 0, "end": 5, "label": "corporation"}]),
        ("Skip me.", "ignore", []),
    ]:
        h = input_hash(text)
        db.save("ner", {"text": text, "spans": spans, "answer": answer, "_input_hash": h, "_task_hash": task_hash(h, spans)}, sid)
    db.close()
    out = tmp_path / "ner.jsonl"
    res = CliRunner().invoke(cli, ["db-out", "ner", str(out), "--db", str(tmp_path / "a.db")])
    assert res.exit_code == 0, res.output
    assert "4 example(s)" in res.output
    assert [json.loads(line)["answer"] for line in out.read_text().splitlines()] == ["accept", "accept", "reject", "ignore"]
    docs = read_docs(out, nlp)
    assert [(d.text, [(e.text, e.label_) for e in d.ents]) for d in docs] == [
        ("Tim Cook visited Berlin.", [("Tim Cook", "person"), ("Berlin", "location")]), ("Nothing here.", [])]
    store_dir = tmp_path / "store"
    res = CliRunner().invoke(cli, ["store", "build", str(out), "-o", str(store_dir), "--encoder", tiny_bert_path])
    assert res.exit_code == 0, res.output
    assert [d.text for d in DemoStore(nlp.vocab).from_disk(store_dir).docs] == ["Tim Cook visited Berlin.", "Nothing here."]
    res = CliRunner().invoke(cli, ["db-out", "other", str(tmp_path / "x.jsonl"), "--db", str(tmp_path / "a.db")])
    assert res.exit_code == 1 and "E405" in res.output


@pytest.mark.slow
def test_annotate_from_a_config(small_nlp, tmp_path):
    """--pipeline may be a config.cfg (as `spacy assemble` takes it), its store from store.path."""
    store_dir = tmp_path / "store"
    small_nlp.get_pipe("el4ner").store.to_disk(store_dir)
    config = small_nlp.config.copy()
    config["components"]["el4ner"]["store"]["path"] = str(store_dir)
    config.to_disk(tmp_path / "config.cfg")
    (tmp_path / "texts.txt").write_text(TEXTS[0] + "\n")
    out = tmp_path / "tasks.jsonl"
    res = CliRunner().invoke(cli, ["annotate", str(tmp_path / "texts.txt"), "-p", str(tmp_path / "config.cfg"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    [task] = [json.loads(line) for line in out.read_text().splitlines()]
    assert task["text"] == TEXTS[0] and task["meta"]["candidates"]
