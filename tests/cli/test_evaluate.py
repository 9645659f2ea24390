"""evaluate's pipeline builder: members with adapters, retriever versions."""
import pytest

from spacy_el4ner.cli.evaluate import build_pipeline
from spacy_el4ner.cli.run_config import component_settings, for_members, member_settings, member_views
from spacy_el4ner.store import DemoStore

from conftest import make_hash_embedder, make_labelled_docs


def _store(nlp, tmp_path):
    store = DemoStore(nlp.vocab, ["LOC", "ORG", "PER"], make_hash_embedder())
    store.add(make_labelled_docs(nlp))
    store.to_disk(tmp_path / "store")
    return tmp_path / "store"


SENTENCE = {"@el4ner_retrievers": "el4ner.SentenceSimRetriever.v1", "k": 2, "max_empty": 1}


def test_member_with_adapter(nlp, tmp_path):
    path = _store(nlp, tmp_path)
    members = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct+adapters/x"]
    nlp2 = build_pipeline(["LOC", "ORG", "PER"], members, path, tmp_path / "cache", "none", SENTENCE)
    pipe = nlp2.get_pipe("el4ner")
    assert list(pipe.members) == members  # order kept: ties and "first" depend on it
    plain, adapted = pipe.members.values()
    assert (plain.name, plain.adapter) == ("qwen2.5-coder-0.5b-instruct", None)
    assert (adapted.name, adapted.adapter) == ("qwen2.5-coder-0.5b-instruct", "adapters/x")
    assert adapted.cache is not None
    assert pipe.ensemble.verifiers() == [members[0]]
    assert nlp2.config["components"]["el4ner"]["ensemble"]["@el4ner_members"] == "el4ner.Members.v1"


def test_member_with_adapter_on_llama_cpp():
    """--engine llama.cpp puts adapter members on llama.cpp too (the adapter converted there)."""
    from spacy_el4ner.cli.run_config import ensemble_block

    members = ["qwen2.5-coder-0.5b-instruct", "gemma-3-270m+adapters/x"]
    block = ensemble_block(members, {m: {} for m in members}, "llama.cpp", "fastest", None)
    models = {m: b["model"] for m, b in block["members"].items()}
    assert models["qwen2.5-coder-0.5b-instruct"] == {"@el4ner_models": "el4ner.LlamaCppModel.v1", "name": "qwen2.5-coder-0.5b-instruct"}
    assert models["gemma-3-270m+adapters/x"] == {"@el4ner_models": "el4ner.LlamaCppModel.v1", "name": "gemma-3-270m", "adapter": "adapters/x"}


def test_member_with_a_demonstration_view(nlp, tmp_path):
    import typer

    path = _store(nlp, tmp_path)
    members = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct@1", "qwen2.5-coder-0.5b-instruct+adapters/x@2"]
    nlp2 = build_pipeline(["LOC", "ORG", "PER"], members, path, None, "none", SENTENCE)
    pipe = nlp2.get_pipe("el4ner")
    assert list(pipe.members) == members
    assert [(m.name, m.adapter) for m in pipe.members.values()] == [
        ("qwen2.5-coder-0.5b-instruct", None), ("qwen2.5-coder-0.5b-instruct", None), ("qwen2.5-coder-0.5b-instruct", "adapters/x"),
    ]
    assert pipe.settings.member_demo_views == {members[1]: 1, members[2]: 2}
    blocks = nlp2.config["components"]["el4ner"]["ensemble"]["members"]
    assert [blocks[m].get("view", 0) for m in members] == [0, 1, 2]
    with pytest.raises(typer.BadParameter, match="demonstration view"):
        member_views(["qwen@one"])
    # a member run alone keeps its own settings
    assert for_members({"member.view": {members[1]: 1}}, [members[1]], members) == {"member.view": {members[1]: 1}}
    per_member = {"member.constrained": {members[1]: True}, "member.prompt": {members[1]: "fine-tuned"}}
    assert for_members(per_member, [members[0]], members) == {"member.constrained": {}, "member.prompt": {}}


def test_member_settings_from_set(nlp, tmp_path):
    import typer

    path = _store(nlp, tmp_path)
    overrides = {"member.weight": {"org/a": 2.0}, "member.verifier": {"org/b": True}, "accept.extraction_quorum": 2.0,
                 "classify.voting": "first", "validate": None}
    nlp2 = build_pipeline(["LOC"], ["org/a", "org/b"], path, None, "none", SENTENCE, overrides=overrides)
    pipe = nlp2.get_pipe("el4ner")
    assert pipe.settings.member_weights == {"org/a": 2.0, "org/b": 1.0} and pipe.settings.extraction_quorum == 2.0
    assert pipe.ensemble.verifiers() == ["org/b"] and pipe.voting == "first" and not pipe.validation
    with pytest.raises(typer.BadParameter, match="not members of this run"):
        member_settings({"member.weight": {"org/c": 1.0}}, ["org/a"])
    with pytest.raises(typer.BadParameter, match="a member setting is one of"):
        member_settings({"member.wieght": 1.0}, ["org/a"])
    assert component_settings({"accept.min_confidence": 0.4, "validate": None, "member.view": 1}) == {
        "accept": {"min_confidence": 0.4}, "validate": None,
    }


def test_pre_extraction_by_list(nlp, tmp_path):
    from spacy_el4ner.cli.evaluate import retriever_block

    path = _store(nlp, tmp_path)
    spansim = retriever_block("spansim", 2, 1, "llm", "org/b", "[")
    nlp2 = build_pipeline(["LOC"], ["org/a", "org/b"], path, None, "none", spansim)
    assert nlp2.get_pipe("el4ner").retriever.pre_extraction_by == ["org/b"]


def test_variants_by_name():
    from spacy_el4ner.cli.evaluate import _variants

    runs = _variants(["a", "b"], alone=False, ablate=False, only=["no-validation"])
    assert list(runs) == ["ensemble", "no-validation"]
    assert runs["no-validation"] == {"overrides": {"validate": None}}
    assert list(_variants(["a", "b"], False, False, ["alone:b"])) == ["ensemble", "alone:b"]
    runs = _variants(["a", "b"], alone=True, ablate=True)
    assert list(runs) == ["ensemble", "alone:a", "alone:b", "random demos", "no-voting (first member types)", "no-validation", "no-type-prior (members type alone)", "no-trim (spans as extracted)"]
    assert runs["no-type-prior (members type alone)"] == {"overrides": {"classify.type_prior": None}}
    assert runs["no-trim (spans as extracted)"] == {"overrides": {"edges": None}}


def test_finished_variants_are_kept(tmp_path):
    from spacy_el4ner.cli.evaluate import _previous, _write

    meta = {"data": "d", "store": "s", "labels": ["x"], "k": 4, "retriever": SENTENCE, "name": "", "settings": {},
            "members": ["a", "b"], "n_sentences": 10}
    res = {"p": 1.0, "r": 2.0, "f": 1.3, "sec_per_sentence": 0.1, "llm_calls_per_sentence": 1, "prompt_tokens_per_sentence": 1,
           "generated_tokens_per_sentence": 1, "members": ["a", "b"], "n_sentences": 10}
    _write(tmp_path, "run", meta, {"ensemble": res})
    assert "| ensemble | 1.0 | 2.0 | 1.3 |" in (tmp_path / "results.md").read_text()
    assert list(_previous(tmp_path, meta)) == ["ensemble"]
    assert _previous(tmp_path, {**meta, "n_sentences": 11}) == {}  # another sample: start over
    assert _previous(tmp_path, {**meta, "settings": {"validate": None}}) == {}
    assert _previous(tmp_path, {**meta, "retriever": {**SENTENCE, "k": 3}}) == {}
    assert list(_previous(tmp_path, {**meta, "name": "renamed"})) == ["ensemble"]
    _write(tmp_path, "run", {**meta, "tagger": "en_core_web_sm"}, {"ensemble": res})
    assert _previous(tmp_path, {**meta, "tagger": "none"}) == {}  # other POS weights: start over
    (tmp_path / "results.json").write_text("{not json")
    assert _previous(tmp_path, meta) == {}


def test_member_alone_runs_drop_the_ensembles_finder_rules():
    overrides = {"accept.finder_sets": [["a"], ["a", "b"]], "accept.extraction_quorum": 2.0,
                 "member.weight": {"a": 2.0, "b": 1.0}, "classify.voting": "first"}
    # the ensemble keeps its settings
    assert for_members(overrides, ["a", "b"], ["a", "b"]) == overrides
    # "b" alone: its spans are all it has; settings of absent members would be an error
    assert for_members(overrides, ["b"], ["a", "b"]) == {"member.weight": {"b": 1.0}, "classify.voting": "first"}


def test_calibration_file_becomes_settings(tmp_path):
    import json

    from spacy_el4ner.cli.evaluate import calibration_settings

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"accept_finder_sets": [["a", "b"], ["b"]], "min_confidence": 0.45, "f1_union": 50.0}))
    assert calibration_settings(path, ["a", "b"]) == {"accept.finder_sets": [["a", "b"], ["b"]], "accept.min_confidence": 0.45}
    path.write_text(json.dumps({"accept_finder_sets": [], "min_confidence": None}))  # the union, the component's threshold
    assert calibration_settings(path, ["a", "b"]) == {"accept.finder_sets": []}
    cases = [
        (None, "cannot read it"),
        ("{not json", "cannot read it"),
        (json.dumps({"f1_union": 3}), "no accept_finder_sets"),
        (json.dumps({"accept_finder_sets": ["a"]}), "no accept_finder_sets"),
        (json.dumps({"accept_finder_sets": [["a", "c"]]}), "does not have: ['c']"),
        (json.dumps({"accept_finder_sets": [], "min_confidence": 3}), "between 0 and 1"),
    ]
    for text, why in cases:
        bad = tmp_path / "bad.json"
        bad.unlink(missing_ok=True)
        if text is not None:
            bad.write_text(text)
        with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
            calibration_settings(bad, ["a", "b"])


def test_evaluate_applies_the_calibration_and_set_wins(tmp_path, monkeypatch):
    """The command line: --calibration's settings reach the run (its meta), --set overrides them."""
    import importlib
    import json

    import spacy
    from typer.testing import CliRunner

    from spacy_el4ner.cli import app

    ev = importlib.import_module("spacy_el4ner.cli.evaluate")  # the package exports the command under that name

    nlp = spacy.blank("en")
    store = _store(nlp, tmp_path)
    seen = {}

    class Stop(Exception):
        pass

    def fake_previous(output, meta):
        seen.update(meta["settings"])
        raise Stop

    monkeypatch.setattr(ev, "_previous", fake_previous)
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"accept_finder_sets": [["m1"]], "min_confidence": 0.4}))
    data = tmp_path / "d.spacy"
    from spacy.tokens import DocBin

    DocBin(docs=make_labelled_docs(nlp)).to_disk(data)
    args = ["evaluate", str(data), "--store", str(store), "--members", "m1,m2", "--calibration", str(cal), "--output", str(tmp_path / "o")]
    res = CliRunner().invoke(app, args + ["--set", "accept.min_confidence=0.2"])
    assert isinstance(res.exception, Stop), res.output
    assert seen == {"accept.finder_sets": [["m1"]], "accept.min_confidence": 0.2}
    res = CliRunner().invoke(app, [*args[:5], "m2", *args[6:]])
    assert res.exit_code == 1 and "does not have: ['m1']" in " ".join(res.output.split())


def test_a_spacy_pipeline_member_spec(nlp, tmp_path):
    path = _store(nlp, tmp_path)
    members = ["org/a", "spacy:some/trained/model-best"]
    nlp2 = build_pipeline(["LOC"], members, path, None, "none", SENTENCE, overrides={"member.weight": {members[1]: 2.0}})
    blocks = nlp2.config["components"]["el4ner"]["ensemble"]["members"]
    assert blocks[members[1]] == {"@el4ner_members": "el4ner.SpacyMember.v1", "pipeline": "some/trained/model-best", "weight": 2.0,
                                  "label_map": {}, "score": 0.9, "spans_key": None}
    pipe = nlp2.get_pipe("el4ner")
    assert pipe.settings.span_members == [members[1]] and pipe.ensemble.verifiers() == ["org/a"]
