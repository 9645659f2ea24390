"""train-member: spaCy's own training on a store's sentences, and the trained pipeline as a member
that travels inside a saved el4ner pipeline."""
import shutil

import pytest
import spacy
from typer.testing import CliRunner

from spacy_el4ner.cli import app
from spacy_el4ner.cli.train_member import split_docs
from spacy_el4ner.store import DemoStore

from conftest import make_hash_embedder, make_labelled_docs


def test_split_is_seeded_and_keeps_one_dev_doc(nlp):
    docs = make_labelled_docs(nlp)
    train, dev = split_docs(docs, 0.2, seed=0)
    assert len(dev) == 1 and len(train) == 3 and {d.text for d in train + dev} == {d.text for d in docs}
    assert split_docs(docs, 0.2, seed=0) == (train, dev)
    import typer

    with pytest.raises(typer.BadParameter, match="at least 2"):
        split_docs(docs[:1], 0.2, 0)
    with pytest.raises(typer.BadParameter, match="between 0 and 1"):
        split_docs(docs, 1.5, 0)


def test_train_member_and_use_it_in_a_saved_pipeline(nlp, tmp_path, monkeypatch):
    docs = make_labelled_docs(nlp) * 3  # 12 sentences: a few seconds of training
    store = DemoStore(nlp.vocab, ["LOC", "ORG", "PER"], make_hash_embedder())
    store.add(docs)
    store.to_disk(tmp_path / "store")
    out = tmp_path / "member"
    res = CliRunner().invoke(app, ["train-member", "--store", str(tmp_path / "store"), "--output", str(out), "--max-steps", "60"])
    assert res.exit_code == 0, res.output
    assert (out / "model-best" / "config.cfg").is_file() and (out / "config.cfg").is_file()
    assert 'pipeline = "' in res.output and "el4ner.SpacyMember.v1" in res.output
    trained = spacy.load(out / "model-best")
    assert set(trained.get_pipe("ner").labels) == {"LOC", "ORG", "PER"}
    # as a member: its pipeline is copied into the saved el4ner pipeline
    el = spacy.blank("en")
    el.add_pipe("el4ner", config={
        "labels": ["LOC", "ORG", "PER"],
        "ensemble": {"@el4ner_members": "el4ner.Members.v1", "members": {
            "ner": {"@el4ner_members": "el4ner.SpacyMember.v1", "pipeline": str(out / "model-best")}}},
        "encoder": {"@el4ner_encoders": "test.HashEmbedder.v1"},
        "validate": None,
    })
    el.initialize(lambda: [spacy.training.Example(el.make_doc(d.text), d) for d in make_labelled_docs(el)])
    before = [(e.text, e.label_) for e in el("Apple hired Tim Cook in Cupertino.").ents]
    el.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "el4ner" / "members" / "ner" / "config.cfg").is_file()
    shutil.rmtree(out)  # the original is gone: the saved pipeline has its own copy
    monkeypatch.chdir(tmp_path)
    loaded = spacy.load(tmp_path / "pipeline")
    member = loaded.get_pipe("el4ner").members["ner"]
    assert str(tmp_path / "pipeline" / "el4ner" / "members" / "ner") in member.pipeline
    assert [(e.text, e.label_) for e in loaded("Apple hired Tim Cook in Cupertino.").ents] == before
