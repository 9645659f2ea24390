"""Checkpoints of evaluate runs: rows round-trip, resuming on a fresh clone, prefix runs."""
import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin, Span, SpanGroup
from spacy.training import Example
from spacy.util import minibatch

import importlib
from spacy_el4ner.analysis import stage_breakdown
from spacy_el4ner.cli.checkpoint import Checkpoint, examples_from_rows, prediction_rows
from spacy_el4ner.store import DemoStore

from conftest import FakeModel, HashEmbedder, make_doc, make_labelled_docs

evaluate_mod = importlib.import_module("spacy_el4ner.cli.evaluate")  # the package exports the command under that name

GOLD = {"Apple": "ORG", "Tim Cook": "PER", "Paris": "LOC", "London": "LOC", "Google": "ORG", "Egypt": "LOC", "Rome": "LOC", "Anna Berg": "PER"}


def _predicted(nlp, ref):
    """A predicted doc with one entity and two candidates, as the component leaves it."""
    doc = nlp.make_doc(ref.text)
    spans = [doc.char_span(e.start_char, e.end_char, label=e.label_) for e in ref.ents]
    doc.ents = spans[:1]
    group = SpanGroup(doc, name="el4ner", spans=[Span(doc, s.start, s.end, label=s.label_) for s in spans[:2]])
    group.attrs["details"] = [{"text": s.text, "label": s.label_, "accepted": i == 0, "extracted_by": ["a"], "votes": {"a": s.label_}}
                              for i, s in enumerate(spans[:2])]
    group.attrs["scores"] = [0.9, 0.2][: len(group)]
    doc.spans["el4ner"] = group
    return Example(doc, ref)


def test_rows_rebuild_the_examples(nlp):
    refs = make_labelled_docs(nlp)
    examples = [_predicted(nlp, r) for r in refs]
    rows = prediction_rows(examples, "el4ner")
    again = examples_from_rows(json.loads(json.dumps(rows)), refs, nlp.vocab, "el4ner")
    assert prediction_rows(again, "el4ner") == rows
    assert stage_breakdown(again) == stage_breakdown(examples)
    assert [e.label_ for e in again[0].predicted.ents] == ["ORG"]
    # rows of other sentences, or spans off the tokens, are refused
    with pytest.raises(ValueError, match="sentence 1"):
        examples_from_rows(rows[1:], refs, nlp.vocab, "el4ner")
    bad = json.loads(json.dumps(rows))
    bad[0]["predicted"] = [[1, 3, "ORG"]]
    with pytest.raises(ValueError, match="token boundaries"):
        examples_from_rows(bad, refs, nlp.vocab, "el4ner")


def test_checkpoint_resumes_only_its_own_run(nlp, tmp_path, caplog):
    run = {"data": "d", "members": ["a"], "n_sentences": 4}
    rows = prediction_rows([_predicted(nlp, r) for r in make_labelled_docs(nlp)], "el4ner")
    ck = Checkpoint(tmp_path, "ensemble", run)
    assert ck.load() == []
    ck.start_segment()
    ck.add(rows[:2], {"elapsed": 2.0, "forward_passes": 6})
    ck.add(rows[2:3], {"elapsed": 1.0, "forward_passes": 3})
    again = Checkpoint(tmp_path, "ensemble", run)
    assert again.load() == rows[:3]
    assert again.done == 3
    totals, segments = again.totals()
    assert (totals["elapsed"], totals["forward_passes"]) == (3.0, 9)
    assert segments[0]["first"] == 0 and segments[0]["done"] == 3
    # a batch appended after the state was written (killed in between) runs again
    with ck.rows_path.open("a") as f:
        f.write(json.dumps(rows[3]) + "\n")
    assert Checkpoint(tmp_path, "ensemble", run).load() == rows[:3]
    assert len(ck.rows_path.read_text().splitlines()) == 3
    # another run's checkpoint, or a broken one, is not resumed
    assert Checkpoint(tmp_path, "ensemble", {**run, "members": ["b"]}).load() == []
    ck.rows_path.write_text("{not json\n")
    assert Checkpoint(tmp_path, "ensemble", run).load() == []
    assert "starting over" in caplog.text
    ck.clear()
    assert not ck.rows_path.exists() and not ck.state_path.exists()


# --- the evaluate command, interrupted and resumed ---------------------------------------------

SEEN = []


def _member(name):
    def answer(text):
        SEEN.append(text)
        return json.dumps([s for s in GOLD if s in text])

    return FakeModel(name, answers=answer, labels=GOLD)


@pytest.fixture
def setup(nlp, tmp_path, scripts, monkeypatch):
    scripts("ckpt", lambda: {"a": _member("a"), "b": _member("b")})
    refs = make_labelled_docs(nlp) + [
        make_doc(nlp, "Anna Berg flew to Rome.", [("Anna Berg", "PER"), ("Rome", "LOC")]),
        make_doc(nlp, "Google opened in London.", [("Google", "ORG"), ("London", "LOC")]),
    ]
    DocBin(docs=refs).to_disk(tmp_path / "data.spacy")
    store = DemoStore(nlp.vocab, ["LOC", "ORG", "PER"], HashEmbedder())
    store.add(make_labelled_docs(nlp)[:2])
    store.to_disk(tmp_path / "store")

    def build(labels, members, store_dir, *args, **kw):
        nlp2 = spacy.blank("en")
        nlp2.add_pipe("el4ner", config={
            "labels": labels, "ensemble": {"@el4ner_members": "test.Fake.v1", "script": "ckpt"},
            "encoder": {"@el4ner_encoders": "test.HashEmbedder.v1"},
            "store": {"@el4ner_stores": "el4ner.DemoStore.v1", "path": str(store_dir)},
        })
        return nlp2

    monkeypatch.setattr(evaluate_mod, "build_pipeline", build)
    SEEN.clear()
    return tmp_path, refs


def run(tmp_path: Path, output: str, limit: int = 0, prefix_run=None, settings=()):
    evaluate_mod.evaluate(
        data=tmp_path / "data.spacy", store=tmp_path / "store", output=tmp_path / output, members="a,b", labels=None,
        limit=limit, k=2, retriever="sentence", pre_extraction="llm", max_empty=1, pre_prefix="", pre_by="first", alone=False, ablate=False,
        variants="none", save_predictions=True, rerun=False, cache=None, tagger="none", batch_size=2, dtype="fastest", engine="transformers", name="t",
        settings=list(settings), calibration=None, prefix_run=prefix_run, export_config=None,
    )
    return json.loads((tmp_path / output / "results.json").read_text())["results"]["ensemble"]


def test_an_interrupted_evaluation_resumes_where_it_stopped(setup, monkeypatch):
    tmp_path, refs = setup
    whole = run(tmp_path, "whole")
    assert whole["f"] > 0 and "segments" not in whole

    def two_batches(items, size):
        for i, batch in enumerate(minibatch(items, size)):
            if i == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(evaluate_mod, "minibatch", two_batches)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cut")
    state = json.loads((tmp_path / "cut" / "partial-ensemble.json").read_text())
    assert state["done"] == 4
    monkeypatch.setattr(evaluate_mod, "minibatch", minibatch)
    SEEN.clear()
    resumed = run(tmp_path, "cut")  # a fresh process: no response cache, only the checkpoint
    assert set(SEEN) == {r.text for r in refs[4:]}  # the members were asked about the last two sentences only
    for key in ("p", "r", "f", "per_type", "stages"):
        assert resumed[key] == whole[key], key
    assert [s["first"] for s in resumed["segments"]] == [0, 4]
    assert (tmp_path / "cut" / "predictions-ensemble.jsonl").read_text() == (tmp_path / "whole" / "predictions-ensemble.jsonl").read_text()
    assert not list((tmp_path / "cut").glob("partial-*"))
    # a checkpoint left behind by a run that stopped after writing its results is removed, not resumed
    (tmp_path / "cut" / "partial-ensemble.json").write_text("{}")
    SEEN.clear()
    assert run(tmp_path, "cut") == resumed and SEEN == []
    assert not list((tmp_path / "cut").glob("partial-*"))


def test_prefix_run_is_not_run_again(setup):
    tmp_path, refs = setup
    whole = run(tmp_path, "whole")
    run(tmp_path, "first4", limit=4)
    SEEN.clear()
    full = run(tmp_path, "full", prefix_run=tmp_path / "first4")
    assert full["f"] == whole["f"] and full["stages"] == whole["stages"]
    assert full["segments"][0]["from"] == str(tmp_path / "first4")
    assert set(SEEN) == {r.text for r in refs[4:]}
    # a run with other settings is no prefix of this one
    with pytest.raises(SystemExit):
        run(tmp_path, "other", prefix_run=tmp_path / "first4", settings=["validation_threshold=0.5"])
