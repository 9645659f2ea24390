"""The review server for real: uvicorn on 127.0.0.1 with two pages answering at once, the
`review` command end to end (and its --save-store), and no non-loopback bind without the flag."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from spacy_el4ner.annotate.app import make_app
from spacy_el4ner.annotate.db import Database
from spacy_el4ner.annotate.hosts import check_host, is_loopback
from spacy_el4ner.annotate.review import Review
from spacy_el4ner.cli import app as cli
from spacy_el4ner.store import DemoStore

from .annotate_helpers import TEXTS, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_pages_answering_at_once_lose_nothing(small_nlp, tmp_path, live_server):
    db = Database(tmp_path / "a.db")
    review = Review(small_nlp, db, "ner", [(t, {}) for t in TEXTS])
    before = len(review.pipe.store)
    url = live_server(make_app(review))
    barrier = threading.Barrier(2, timeout=120)
    answered = {0: [], 1: []}
    errors = []

    def page(k):
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                while True:
                    task = client.post("/api/next", json={}).json()["task"]
                    try:  # both pages send their answers at the same moment while both have one
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        pass
                    if task is None:
                        barrier.abort()
                        return
                    spans = [{"start": s["start"], "end": s["end"], "label": s["label"]} for s in task["spans"]]
                    res = client.post("/api/answer", json={"id": str(task["_input_hash"]), "answer": "accept", "spans": spans})
                    assert res.status_code == 200, res.text
                    answered[k].append(task["text"])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=page, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert answered[0] and answered[1]
    assert sorted(answered[0] + answered[1]) == sorted(TEXTS)
    rows = db.examples("ner")
    assert sorted(r["text"] for r in rows) == sorted(TEXTS) and all(r["answer"] == "accept" for r in rows)
    store_texts = [d.text for d in review.pipe.store.docs]
    assert len(store_texts) == before + len(TEXTS) and sorted(store_texts[before:]) == sorted(TEXTS)
    db.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host) and check_host(host, allow_remote=False) is False


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_other_hosts_need_the_flag(host):
    with pytest.raises(ValueError, match="E406.*--allow-remote"):
        check_host(host, allow_remote=False)
    assert check_host(host, allow_remote=True) is True


def test_review_refuses_a_non_loopback_host_without_the_flag(tmp_path, texts_file):
    db = tmp_path / "a.db"
    res = CliRunner().invoke(cli, ["review", "ner", str(texts_file), "--pipeline", str(tmp_path / "no-pipeline"),
                                   "--db", str(db), "--host", "0.0.0.0"])
    assert res.exit_code == 1 and "E406" in res.output and "--allow-remote" in res.output
    assert not db.exists()


def test_review_warns_when_serving_beyond_loopback(tmp_path, texts_file):
    """With --allow-remote the warning comes first (the missing pipeline then stops it here)."""
    res = CliRunner().invoke(cli, ["review", "ner", str(texts_file), "--pipeline", str(tmp_path / "no-pipeline"),
                                   "--db", str(tmp_path / "a.db"), "--host", "0.0.0.0", "--allow-remote"])
    text = " ".join(res.output.split())
    assert "W401" in text and "not a loopback address" in text and "0.0.0.0" in text
    assert res.exit_code == 1 and "Could not load the pipeline" in text


@pytest.mark.slow
def test_review_command_end_to_end(pipeline_dir, tmp_path):
    """`review` in its own process: answers over HTTP, Ctrl+C, the grown store written by --save-store."""
    source = tmp_path / "texts.txt"
    source.write_bytes(b"bad \xff line\n" + "\n".join(TEXTS[:2]).encode() + b"\n")
    db, grown, port = tmp_path / "a.db", tmp_path / "grown", free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spacy_el4ner", "review", "ner", str(source), "--pipeline", str(pipeline_dir),
         "--db", str(db), "--port", str(port), "--save-store", str(grown)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                cfg = httpx.get(url + "/api/config", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.time() < deadline, "review did not start"
                time.sleep(0.5)
        assert cfg["dataset"] == "ner"
        task = httpx.post(url + "/api/next", json={}, timeout=120).json()["task"]
        assert task["text"] == TEXTS[0]
        res = httpx.post(url + "/api/answer", timeout=60, json={
            "id": str(task["_input_hash"]), "answer": "accept",
            "spans": [{"start": 0, "end": 8, "label": "person"}, {"start": 17, "end": 23, "label": "location"}]})
        assert res.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Review at http://127.0.0.1:" in out and "1 source line(s) skipped" in out and "texts.txt:1" in out
    store = DemoStore().from_disk(grown)
    assert len(store) == 10
    assert [(e.text, e.label_) for e in store.docs[-1].ents] == [("Tim Cook", "person"), ("Berlin", "location")]
    assert [r["text"] for r in Database(db).examples("ner")] == [TEXTS[0]]
