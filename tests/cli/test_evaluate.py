"""evaluate's pipeline builder: members with adapters, retriever versions."""
from spacy_el4ner.cli.evaluate import build_pipeline
from spacy_el4ner.store import DemoStore

from conftest import make_hash_embedder, make_labelled_docs


def _store(nlp, tmp_path):
    store = DemoStore(nlp.vocab, ["LOC", "ORG", "PER"], make_hash_embedder())
    store.add(make_labelled_docs(nlp))
    store.to_disk(tmp_path / "store")
    return tmp_path / "store"


def test_member_with_adapter(nlp, tmp_path):
    path = _store(nlp, tmp_path)
    members = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct+adapters/x"]
    pipe = build_pipeline(["LOC", "ORG", "PER"], members, path, 2, "llm", tmp_path / "cache", "none").get_pipe("el4ner")
    assert list(pipe.members) == members  # order kept: ties and "first" depend on it
    plain, adapted = pipe.members.values()
    assert (plain.name, plain.adapter) == ("qwen2.5-coder-0.5b-instruct", None)
    assert (adapted.name, adapted.adapter) == ("qwen2.5-coder-0.5b-instruct", "adapters/x")
    assert adapted.cache is not None
    assert pipe.retriever.pre_extraction_by == "first"


def test_pre_extraction_by_list(nlp, tmp_path):
    path = _store(nlp, tmp_path)
    nlp2 = build_pipeline(["LOC"], ["a", "b"], path, 2, "llm", None, "none", pre_extraction_by=["b"])
    assert nlp2.get_pipe("el4ner").retriever.pre_extraction_by == ["b"]
