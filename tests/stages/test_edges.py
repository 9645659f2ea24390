"""Span edges by the store's casing convention (StoreCasingTrim)."""
import pytest

from spacy_el4ner.sentences import split_units
from spacy_el4ner.stages.edges import BoundaryRule, StoreCasingTrim
from spacy_el4ner.store import DemoStore

from conftest import HashEmbedder, make_doc

LABELS = ["ORG", "EVENT", "PER"]


@pytest.fixture
def store(nlp):
    docs = [
        make_doc(nlp, "Siemens and Bosch met Airbus.", [("Siemens", "ORG"), ("Bosch", "ORG"), ("Airbus", "ORG")]),
        make_doc(nlp, "General Motors sued Nestle.", [("General Motors", "ORG"), ("Nestle", "ORG")]),
        make_doc(nlp, "the 2004 presidential election was close.", [("2004 presidential election", "EVENT")]),
        make_doc(nlp, "Bolt won the 100 metres final.", [("Bolt", "PER"), ("100 metres final", "EVENT")]),
    ]
    s = DemoStore(nlp.vocab, LABELS, HashEmbedder())
    s.add(docs)
    return s


def typed_units(nlp, text, spans):
    """One unit of ``text`` with candidates (surface, label), each extracted by member "m"."""
    doc = nlp.make_doc(text)
    (unit,) = split_units(doc, 0, 200)
    for surface, label in spans:
        start = text.index(surface)
        cand = unit.add_candidate(start, start + len(surface), "m")
        cand.label = label
    return [doc], [unit]


def test_rates_and_rules_by_hand(store):
    rule = StoreCasingTrim(max_rate=0.05, min_count=2)
    rates = rule.rates(store)
    assert rates["ORG"] == (0.0, 0.0, 5)
    # "2004 presidential election" ends in a lower-case word, "100 metres final" too; neither starts with one
    assert rates["EVENT"] == (0.0, 1.0, 2)
    assert rates["PER"] == (0.0, 0.0, 1)
    rules = rule.rules(store)
    assert rules["ORG"] == (True, True)
    assert rules["EVENT"] == (True, False)  # its ends keep their lower-case words
    assert "PER" not in rules  # one stored span: too little evidence
    assert isinstance(rule, BoundaryRule)


def test_trims_only_where_the_label_never_has_lower_case_edges(nlp, store):
    text = "Tim met Siemens executives before the 2008 presidential election ."
    docs, units = typed_units(nlp, text, [("Siemens executives", "ORG"), ("2008 presidential election", "EVENT")])
    changed = StoreCasingTrim(min_count=2)(docs, units, store)
    assert changed == 1
    by_text = {c.text: c for c in units[0].candidates.values()}
    assert set(by_text) == {"Siemens", "2008 presidential election"}
    siemens = by_text["Siemens"]
    assert siemens.refined_from == "Siemens executives" and siemens.label == "ORG" and siemens.extracted_by == {"m"}
    assert text[siemens.start : siemens.end] == "Siemens" and siemens.key in units[0].candidates


def test_leading_words_and_what_is_left_alone(nlp, store):
    text = "the former Toyota boss praised apple engineers and Bosch ."
    docs, units = typed_units(nlp, text, [("former Toyota boss", "ORG"), ("apple engineers", "ORG"), ("Bosch", "ORG")])
    assert StoreCasingTrim(min_count=2)(docs, units, store) == 1
    texts = sorted(c.text for c in units[0].candidates.values())
    # all lower case: trimming would leave no name, so the span stays as extracted
    assert texts == ["Bosch", "Toyota", "apple engineers"]


def test_merges_into_an_extracted_shorter_span(nlp, store):
    text = "They met Siemens executives ."
    docs, units = typed_units(nlp, text, [("Siemens executives", "ORG"), ("Siemens", "ORG")])
    units[0].candidates[(9, 16)].extracted_by = {"other"}
    assert StoreCasingTrim(min_count=2)(docs, units, store) == 1
    (cand,) = units[0].candidates.values()
    assert cand.text == "Siemens" and cand.extracted_by == {"m", "other"} and cand.refined_from == "Siemens executives"


def test_untyped_candidates_and_empty_store(nlp, store):
    docs, units = typed_units(nlp, "They met Siemens executives .", [("Siemens executives", None)])
    assert StoreCasingTrim(min_count=2)(docs, units, store) == 0
    docs, units = typed_units(nlp, "They met Siemens executives .", [("Siemens executives", "ORG")])
    assert StoreCasingTrim()(docs, units, DemoStore(nlp.vocab, LABELS, HashEmbedder())) == 0
    assert [c.text for c in units[0].candidates.values()] == ["Siemens executives"]


def test_rules_follow_the_store(nlp, store):
    rule = StoreCasingTrim(min_count=2)
    assert rule.rules(store)["ORG"] == (True, True)
    store.add([make_doc(nlp, "Siemens executives resigned.", [("Siemens executives", "ORG")])] * 3)
    assert rule.rules(store)["ORG"] == (True, False)  # 3 of 8 ORG spans end in a lower-case word now


@pytest.mark.parametrize("kwargs", [{"max_rate": 1.0}, {"max_rate": -0.1}, {"min_count": 0}])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        StoreCasingTrim(**kwargs)
