"""evaluate's pipeline builder: members with adapters, retriever versions."""
import pytest

from spacy_el4ner.cli.evaluate import _for_members, build_pipeline
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


def test_member_with_a_demonstration_view(nlp, tmp_path):
    import typer

    from spacy_el4ner.cli.evaluate import member_views

    path = _store(nlp, tmp_path)
    members = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct@1", "qwen2.5-coder-0.5b-instruct+adapters/x@2"]
    nlp2 = build_pipeline(["LOC", "ORG", "PER"], members, path, 2, "llm", None, "none")
    pipe = nlp2.get_pipe("el4ner")
    assert list(pipe.members) == members
    assert [(m.name, m.adapter) for m in pipe.members.values()] == [
        ("qwen2.5-coder-0.5b-instruct", None), ("qwen2.5-coder-0.5b-instruct", None), ("qwen2.5-coder-0.5b-instruct", "adapters/x"),
    ]
    assert pipe.settings.member_demo_views == {members[1]: 1, members[2]: 2}
    assert nlp2.config["components"]["el4ner"]["member_demo_views"] == {members[1]: 1, members[2]: 2}
    with pytest.raises(typer.BadParameter, match="demonstration view"):
        member_views(["qwen@one"])
    # a member run alone keeps its own view
    assert _for_members({"member_demo_views": {members[1]: 1}}, [members[1]], members) == {"member_demo_views": {members[1]: 1}}
    per_member = {"constrained_extraction": [members[1]], "finetune_prompt_members": [members[1]]}
    assert _for_members(per_member, [members[0]], members) == {"constrained_extraction": [], "finetune_prompt_members": []}


def test_pre_extraction_by_list(nlp, tmp_path):
    path = _store(nlp, tmp_path)
    nlp2 = build_pipeline(["LOC"], ["org/a", "org/b"], path, 2, "llm", None, "none", pre_extraction_by=["org/b"])
    assert nlp2.get_pipe("el4ner").retriever.pre_extraction_by == ["org/b"]


def test_variants_by_name():
    from spacy_el4ner.cli.evaluate import _variants

    runs = _variants(["a", "b"], alone=False, ablate=False, only=["no-validation"])
    assert list(runs) == ["ensemble", "no-validation"]
    assert runs["no-validation"] == {"validation": False}
    assert list(_variants(["a", "b"], False, False, ["alone:b"])) == ["ensemble", "alone:b"]
    runs = _variants(["a", "b"], alone=True, ablate=True)
    assert list(runs) == ["ensemble", "alone:a", "alone:b", "no-spansim (random demos)", "no-voting (first member types)", "no-validation", "no-type-prior (members type alone)", "no-trim (spans as extracted)"]
    assert runs["no-type-prior (members type alone)"] == {"overrides": {"type_prior": None}}
    assert runs["no-trim (spans as extracted)"] == {"overrides": {"boundary_rule": None}}


def test_finished_variants_are_kept(tmp_path):
    from spacy_el4ner.cli.evaluate import _previous, _write

    meta = {"data": "d", "store": "s", "labels": ["x"], "k": 4, "pre_extraction": "llm", "max_empty": 1,
            "pre_extraction_by": "first", "name": "", "settings": {}, "members": ["a", "b"], "n_sentences": 10}
    res = {"p": 1.0, "r": 2.0, "f": 1.3, "sec_per_sentence": 0.1, "llm_calls_per_sentence": 1, "prompt_tokens_per_sentence": 1,
           "generated_tokens_per_sentence": 1, "members": ["a", "b"], "n_sentences": 10}
    _write(tmp_path, "run", meta, {"ensemble": res})
    assert "| ensemble | 1.0 | 2.0 | 1.3 |" in (tmp_path / "results.md").read_text()
    assert list(_previous(tmp_path, meta)) == ["ensemble"]
    assert _previous(tmp_path, {**meta, "n_sentences": 11}) == {}  # another sample: start over
    assert _previous(tmp_path, {**meta, "settings": {"validation": False}}) == {}
    assert list(_previous(tmp_path, {**meta, "name": "renamed"})) == ["ensemble"]
    assert list(_previous(tmp_path, {**meta, "stage_demos": {}})) == ["ensemble"]  # written before the key: all demos
    assert _previous(tmp_path, {**meta, "stage_demos": {"validate": 1}}) == {}
    assert list(_previous(tmp_path, {**meta, "validation_skip_above": 1.0})) == ["ensemble"]  # before the key: all validated
    assert _previous(tmp_path, {**meta, "validation_skip_above": 0.9}) == {}
    from spacy_el4ner.cli.evaluate import LEGACY_META
    from spacy_el4ner.component import DEFAULT_CONFIG

    # written before templates were recorded: the v1 prompts, so today's defaults start over
    assert list(_previous(tmp_path, {**meta, "templates": LEGACY_META["templates"]})) == ["ensemble"]
    assert _previous(tmp_path, {**meta, "templates": DEFAULT_CONFIG["templates"]}) == {}
    assert list(_previous(tmp_path, {**meta, "tagger": "none"})) == ["ensemble"]  # written without one
    _write(tmp_path, "run", {**meta, "tagger": "en_core_web_sm"}, {"ensemble": res})
    assert _previous(tmp_path, {**meta, "tagger": "none"}) == {}  # other POS weights: start over
    (tmp_path / "results.json").write_text("{not json")
    assert _previous(tmp_path, meta) == {}


def test_member_alone_runs_drop_the_ensembles_finder_rules():
    overrides = {"accept_finder_sets": [["a"], ["a", "b"]], "extraction_quorum": 2.0,
                 "member_weights": {"a": 2.0, "b": 1.0}, "none_option": True}
    # the ensemble keeps its settings
    assert _for_members(overrides, ["a", "b"], ["a", "b"]) == overrides
    # "b" alone: its spans are all it has; weights of absent members would be a config error
    assert _for_members(overrides, ["b"], ["a", "b"]) == {"member_weights": {"b": 1.0}, "none_option": True}


def test_calibration_file_becomes_settings(tmp_path):
    import json

    from spacy_el4ner.cli.evaluate import calibration_settings

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"accept_finder_sets": [["a", "b"], ["b"]], "min_confidence": 0.45, "f1_union": 50.0}))
    assert calibration_settings(path, ["a", "b"]) == {"accept_finder_sets": [["a", "b"], ["b"]], "min_confidence": 0.45}
    path.write_text(json.dumps({"accept_finder_sets": [], "min_confidence": None}))  # the union, the component's threshold
    assert calibration_settings(path, ["a", "b"]) == {"accept_finder_sets": []}
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
    res = CliRunner().invoke(app, args + ["--set", "min_confidence=0.2"])
    assert isinstance(res.exception, Stop), res.output
    assert seen == {"accept_finder_sets": [["m1"]], "min_confidence": 0.2}
    res = CliRunner().invoke(app, [*args[:5], "m2", *args[6:]])
    assert res.exit_code == 1 and "does not have: ['m1']" in " ".join(res.output.split())
