"""The SQLite dataset: one row per input, edits replace, undo removes, sessions, exclusion,
export, and writes from many threads at once."""
import json
import sqlite3
import threading

import pytest

from spacy_el4ner.annotate.db import Database, check_name
from spacy_el4ner.annotate.tasks import input_hash, task_hash


def _example(text, answer="accept", spans=()):
    h = input_hash(text)
    spans = [dict(s) for s in spans]
    return {"text": text, "spans": spans, "answer": answer, "_input_hash": h, "_task_hash": task_hash(h, spans)}


def test_save_edit_remove_and_sessions(tmp_path):
    db = Database(tmp_path / "a.db")
    s1 = db.add_session("ner")
    db.save("ner", _example("One."), s1)
    db.save("ner", _example("Two.", "reject"), s1)
    s2 = db.add_session("ner")
    assert db.sessions("ner") == [s1, s2] and s1 != s2
    edited = db.save("ner", _example("One.", "accept", [{"start": 0, "end": 3, "label": "x"}]), s2)
    assert edited["_session_id"] == s2 and isinstance(edited["_timestamp"], int)
    rows = db.examples("ner")
    assert [(r["text"], r["answer"], len(r["spans"])) for r in rows] == [("One.", "accept", 1), ("Two.", "reject", 0)]
    assert db.counts("ner") == {"accept": 1, "reject": 1}
    assert [r["text"] for r in db.examples("ner", session=s2)] == ["One."]
    assert db.remove("ner", input_hash("Two.")) and not db.remove("ner", input_hash("Two."))
    assert db.input_hashes("ner") == {input_hash("One.")}
    db.close()
    # what was committed is on disk for any other reader
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("SELECT COUNT(*) FROM examples").fetchone() == (1,)


def test_datasets_are_separate_and_exclude_reads_several(tmp_path):
    db = Database(tmp_path / "a.db")
    db.save("a", _example("One."), db.add_session("a"))
    db.save("b", _example("Two."), db.add_session("b"))
    assert db.datasets() == ["a", "b"]
    assert db.input_hashes("a") == {input_hash("One.")}
    assert db.input_hashes("a", "b") == {input_hash("One."), input_hash("Two.")}
    assert db.input_hashes() == set()


@pytest.mark.parametrize("name", ["", "a b", "../x", "x;drop", "é", "a" * 101])
def test_bad_dataset_names(name):
    with pytest.raises(ValueError, match="E404"):
        check_name(name)


def test_export_is_prodigy_jsonl_and_unknown_dataset_fails(tmp_path):
    db = Database(tmp_path / "a.db")
    sid = db.add_session("ner")
    db.save("ner", _example("Tim Cook.", spans=[{"start": 0, "end": 8, "label": "person"}]), sid)
    out = tmp_path / "out" / "ner.jsonl"
    assert db.export("ner", out) == 1
    [line] = out.read_text(encoding="utf8").splitlines()
    eg = json.loads(line)
    assert eg["spans"] == [{"start": 0, "end": 8, "label": "person"}] and eg["answer"] == "accept" and eg["_session_id"] == sid
    assert [p.name for p in out.parent.iterdir()] == ["ner.jsonl"]  # no temporary file left
    with pytest.raises(KeyError, match="E405"):
        db.export("other", tmp_path / "x.jsonl")


def test_many_threads_lose_nothing(tmp_path):
    db = Database(tmp_path / "a.db")
    sid = db.add_session("ner")
    errors = []

    def work(k):
        try:
            for i in range(25):
                db.save("ner", _example(f"Thread {k} text {i}."), sid)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(db.examples("ner")) == 100
    # and a second connection (another process's view) sees all of them
    assert len(Database(tmp_path / "a.db").examples("ner")) == 100
