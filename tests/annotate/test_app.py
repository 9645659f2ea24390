"""The review app over HTTP (Starlette's TestClient) on the real small pipeline: every flow the
page uses, and every bad request answered with a clear 4xx that changes nothing."""
import warnings

import pytest

with warnings.catch_warnings():  # starlette 1.x: "Using `httpx` with `starlette.testclient` is deprecated"
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from spacy_el4ner.annotate.app import make_app
from spacy_el4ner.annotate.db import Database
from spacy_el4ner.annotate.review import Review

pytestmark = pytest.mark.slow  # the real small pipeline suggests every task

TIM = "Tim Cook visited Berlin to meet Siemens executives."
TIM2 = "Tim Cook visited Munich to meet Siemens engineers."
OTHER = "Angela Merkel flew to Rome on Friday."


@pytest.fixture
def make(small_nlp, tmp_path):
    """make(texts, dataset="ner", exclude=()) -> (client, review, db); the same SQLite file each call."""
    made = []

    def build(texts, dataset="ner", exclude=()):
        db = Database(tmp_path / "annotations.db")
        review = Review(small_nlp, db, dataset, [(t, {"line": i + 1}) for i, t in enumerate(texts)], exclude=exclude)
        client = TestClient(make_app(review))
        made.append(db)
        return client, review, db

    yield build
    for db in made:
        db.close()


def _next(client):
    res = client.post("/api/next", json={})
    assert res.status_code == 200, res.text
    return res.json()["task"]


def _answer(client, task, answer="accept", spans=None):
    spans = task["spans"] if spans is None else spans
    body = {"id": str(task["_input_hash"]), "answer": answer, "spans": [{k: s[k] for k in ("start", "end", "label")} for s in spans]}
    return client.post("/api/answer", json=body)


def _store(review):
    return [(d.text, [(e.text, e.label_) for e in d.ents]) for d in review.pipe.store.docs]


def test_page_config_and_static(make):
    client, review, _ = make([TIM])
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    cfg = client.get("/api/config").json()
    assert cfg["dataset"] == "ner" and cfg["labels"] == ["person", "location", "corporation"]
    assert cfg["colors"]["person"] == "#aa9cfc" and cfg["session"] == review.session
    assert cfg["counts"] == {"dataset": {}, "session": 0, "store": 9}


def test_accepted_correction_is_saved_and_used_by_the_next_suggestion(make):
    client, review, db = make([TIM, TIM2, OTHER])
    before = len(review.pipe.store)
    task = _next(client)
    assert task["text"] == TIM and task["tokens"][0] == {"text": "Tim", "start": 0, "end": 3, "id": 0, "ws": True}
    assert task["meta"]["line"] == 1 and "candidates" in task["meta"]
    gold = [{"start": 0, "end": 8, "label": "person"}, {"start": 17, "end": 23, "label": "location"},
            {"start": 32, "end": 39, "label": "corporation"}]
    res = _answer(client, task, "accept", gold)
    assert res.status_code == 200, res.text
    assert res.json()["counts"] == {"dataset": {"accept": 1}, "session": 1, "store": before + 1}
    [row] = db.examples("ner")
    assert row["answer"] == "accept" and row["_session_id"] == review.session and row["text"] == TIM
    assert [(s["start"], s["end"], s["label"], s["token_start"], s["token_end"]) for s in row["spans"]] == [
        (0, 8, "person", 0, 1), (17, 23, "location", 3, 3), (32, 39, "corporation", 6, 6)]
    assert _store(review)[-1] == (TIM, [("Tim Cook", "person"), ("Berlin", "location"), ("Siemens", "corporation")])
    # suggested lazily, after the answer: the corrected sentence is one of its demonstrations
    task2 = _next(client)
    assert task2["text"] == TIM2 and TIM in task2["meta"]["demos"]
    # reject and ignore are saved, and add nothing to the store
    assert _answer(client, task2, "reject").status_code == 200
    assert _answer(client, _next(client), "ignore", []).status_code == 200
    assert db.counts("ner") == {"accept": 1, "reject": 1, "ignore": 1} and len(review.pipe.store) == before + 1
    assert _next(client) is None  # the source is done
    history = client.get("/api/history").json()["history"]
    assert [(h["text"], h["answer"]) for h in history] == [(OTHER, "ignore"), (TIM2, "reject"), (TIM, "accept")]


def test_edit_and_undo_an_earlier_answer(make):
    client, review, db = make([TIM, OTHER])
    before = len(review.pipe.store)
    task = _next(client)
    _answer(client, task, "accept", [{"start": 0, "end": 8, "label": "corporation"}])
    # an edit: the same task answered again replaces the row and the demonstration
    res = _answer(client, task, "accept", [{"start": 0, "end": 8, "label": "person"}])
    assert res.status_code == 200
    assert [(r["answer"], [s["label"] for s in r["spans"]]) for r in db.examples("ner")] == [("accept", ["person"])]
    assert len(review.pipe.store) == before + 1 and _store(review)[-1] == (TIM, [("Tim Cook", "person")])
    # an edit to reject takes it out of the store
    _answer(client, task, "reject", [])
    assert len(review.pipe.store) == before and db.counts("ner") == {"reject": 1}
    _answer(client, task, "accept", [{"start": 17, "end": 23, "label": "location"}])
    # undo: out of the dataset and the store; the task comes back with the spans as answered
    res = client.post("/api/undo", json={"id": str(task["_input_hash"])})
    assert res.status_code == 200
    back = res.json()["task"]
    assert back["text"] == TIM and [(s["start"], s["label"]) for s in back["spans"]] == [(17, "location")]
    assert db.examples("ner") == [] and len(review.pipe.store) == before
    assert client.post("/api/undo", json={"id": str(task["_input_hash"])}).status_code == 404
    # and it can be answered again
    assert _answer(client, back, "accept").status_code == 200 and db.counts("ner") == {"accept": 1}


def test_restart_resumes_and_exclude_skips(make):
    client, _, db = make([TIM, TIM2, OTHER])
    _answer(client, _next(client), "accept")
    # a new server on the same dataset starts at the first unanswered text
    client2, review2, _ = make([TIM, TIM2, OTHER])
    assert _next(client2)["text"] == TIM2
    assert review2.session != db.sessions("ner")[0]
    # another dataset excluding "ner" skips what "ner" holds
    client3, _, _ = make([TIM, OTHER], dataset="second", exclude=["ner"])
    assert _next(client3)["text"] == OTHER


def test_two_pages_get_different_tasks_and_a_released_task_comes_back(make):
    client, review, _ = make([TIM, OTHER])
    first = _next(client)
    second = _next(client)
    assert {first["text"], second["text"]} == {TIM, OTHER}
    assert client.post("/api/release", json={"id": str(first["_input_hash"])}).status_code == 200
    again = _next(client)
    assert again["text"] == first["text"]


def _snapshot(review, db):
    return db.examples("ner"), _store(review), sorted(review._pending), list(review._answered)


BAD = [
    ("unknown label", 400, "Unknown label 'PERSON'", lambda t: {"answer": "accept", "spans": [{"start": 0, "end": 8, "label": "PERSON"}]}),
    ("outside the text", 400, "outside the text", lambda t: {"answer": "accept", "spans": [{"start": 40, "end": 400, "label": "person"}]}),
    ("not on tokens", 400, "token boundaries", lambda t: {"answer": "accept", "spans": [{"start": 1, "end": 8, "label": "person"}]}),
    ("overlap", 400, "overlap", lambda t: {"answer": "accept", "spans": [{"start": 0, "end": 8, "label": "person"}, {"start": 4, "end": 23, "label": "location"}]}),
    ("bad answer", 400, "answer must be one of", lambda t: {"answer": "maybe", "spans": []}),
    ("spans not a list", 400, "spans must be a list", lambda t: {"answer": "accept", "spans": "Tim"}),
    ("string offsets", 400, "must be integers", lambda t: {"answer": "accept", "spans": [{"start": "0", "end": "8", "label": "person"}]}),
    ("unknown id", 404, "Unknown task id", lambda t: {"id": "12345", "answer": "accept", "spans": []}),
    ("no id", 404, "Unknown task id", lambda t: {"id": None, "answer": "accept", "spans": []}),
    ("id of another type", 404, "Unknown task id", lambda t: {"id": [t["_input_hash"]], "answer": "accept", "spans": []}),
]


def test_bad_answers_change_nothing(make):
    client, review, db = make([TIM, OTHER])
    task = _next(client)
    _answer(client, _next(client), "accept", [])  # something in the dataset and the store already
    before = _snapshot(review, db)
    for name, status, needle, body in BAD:
        res = client.post("/api/answer", json={"id": str(task["_input_hash"]), **body(task)})
        assert res.status_code == status and needle in res.json()["error"], (name, res.text)
        assert _snapshot(review, db) == before, name
    assert _answer(client, task).status_code == 200


def test_bad_bodies_and_paths_change_nothing(make):
    client, review, db = make([TIM])
    task = _next(client)
    before = _snapshot(review, db)
    tid = str(task["_input_hash"])
    ten_mb = b'{"id": "' + tid.encode() + b'", "answer": "accept", "spans": [' + b" " * 10_000_000 + b"]}"
    res = client.post("/api/answer", content=ten_mb, headers={"Content-Type": "application/json"})
    assert res.status_code == 413 and "over 1000000 bytes" in res.json()["error"]

    def chunks():  # no Content-Length: cut off while reading
        for _ in range(20):
            yield b" " * 100_000

    json_type = {"Content-Type": "application/json"}
    assert client.post("/api/answer", content=chunks(), headers=json_type).status_code == 413
    for body in (b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b""):
        res = client.post("/api/answer", content=body, headers=json_type)
        assert res.status_code == 400 and "not a JSON object" in res.json()["error"], body
    # what a form or a plain fetch from another web page can send without a CORS preflight
    good = ('{"id": "%s", "answer": "accept", "spans": []}' % tid).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        res = client.post("/api/answer", content=good, headers={"Content-Type": ctype} if ctype else {})
        assert res.status_code == 415 and "application/json" in res.json()["error"], ctype
    assert client.post("/api/undo", json={"id": "nope"}).status_code == 404
    assert client.get("/api/answer").status_code == 405
    for path in ("/static/..%2f..%2fsetup.cfg", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/../app.py",
                 "/static/%2e%2e%2f%2e%2e%2fcomponent.py", "/static/nope.js"):
        res = client.get(path)
        assert res.status_code in (400, 404) and "import" not in res.text, path
    assert _snapshot(review, db) == before
    # the task is still open and can be answered
    assert _answer(client, task).status_code == 200


def test_only_loopback_host_headers_are_answered(make):
    from spacy_el4ner.annotate.app import LOOPBACK_NAMES

    _, review, db = make([TIM])
    client = TestClient(make_app(review, allowed_hosts=LOOPBACK_NAMES + ["127.0.0.1"]))
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"):
        assert client.get("/api/config", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example:8080", "127.0.0.1.evil.example", "", "[::2]:8080"):
        res = client.get("/api/config", headers={"Host": host})
        assert res.status_code == 400 and "is not served here" in res.json()["error"], host
        res = client.post("/api/next", json={}, headers={"Host": host})
        assert res.status_code == 400, host
    assert review._pending == {} and db.examples("ner") == []


def test_a_failed_suggestion_is_handed_out_again(make, monkeypatch):
    """The model fails once (injected): the page gets a 500, the text is not lost."""
    import spacy_el4ner.annotate.review as review_module

    client, review, db = make([TIM, OTHER])
    real = review_module.annotate
    calls = []

    def fail_once(*args):
        calls.append(args[2])
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real(*args)

    monkeypatch.setattr(review_module, "annotate", fail_once)
    client = TestClient(make_app(review), raise_server_exceptions=False)
    assert client.post("/api/next", json={}).status_code == 500
    assert _next(client)["text"] == TIM
    assert calls == [TIM, TIM]
