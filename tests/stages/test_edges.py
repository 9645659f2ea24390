"""Span edges by the conventions of the store's spans (StoreEdges)."""
import pytest

from spacy_el4ner.sentences import split_units
from spacy_el4ner.stages.edges import BoundaryRule, EdgeRules, StoreEdges
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


def texts(units):
    return sorted(c.text for c in units[0].candidates.values())


def test_rates_and_rules_by_hand(store):
    edges = StoreEdges(max_rate=0.05, min_count=2)
    rates = edges.rates(store)
    assert rates["ORG"] == {"n": 5, "lower_start": 0.0, "lower_end": 0.0, "stop_start": 0.0, "stop_end": 0.0, "bracket": 0.0, "number_start": 0.0}
    # "2004 presidential election" and "100 metres final": lower-case ends, numbers first
    assert rates["EVENT"] == {"n": 2, "lower_start": 0.0, "lower_end": 1.0, "stop_start": 0.0, "stop_end": 0.0, "bracket": 0.0, "number_start": 1.0}
    assert rates["PER"]["n"] == 1
    rules = edges.rules(store)
    assert rules["ORG"] == EdgeRules(True, True, True, True, True, False)
    assert rules["EVENT"] == EdgeRules(lower_start=True, lower_end=False, stop_start=True, stop_end=True, cut_brackets=True, take_number=True)
    assert "PER" not in rules  # one stored span: too little evidence
    assert isinstance(edges, BoundaryRule)
    only_lower = StoreEdges(min_count=2, stop_words=False, brackets=False, numbers=False).rules(store)
    assert only_lower["ORG"] == EdgeRules(lower_start=True, lower_end=True)
    assert only_lower["EVENT"] == EdgeRules(lower_start=True)


def test_trims_lower_case_only_where_the_label_never_has_it(nlp, store):
    text = "Tim met Siemens executives before the 2008 presidential election ."
    docs, units = typed_units(nlp, text, [("Siemens executives", "ORG"), ("2008 presidential election", "EVENT")])
    assert StoreEdges(min_count=2)(docs, units, store) == 1
    assert texts(units) == ["2008 presidential election", "Siemens"]
    siemens = next(c for c in units[0].candidates.values() if c.text == "Siemens")
    assert siemens.refined_from == "Siemens executives" and siemens.label == "ORG" and siemens.extracted_by == {"m"}
    assert text[siemens.start : siemens.end] == "Siemens" and siemens.key in units[0].candidates


def test_leading_words_and_what_is_left_alone(nlp, store):
    text = "the former Toyota boss praised apple engineers and Bosch ."
    docs, units = typed_units(nlp, text, [("former Toyota boss", "ORG"), ("apple engineers", "ORG"), ("Bosch", "ORG")])
    assert StoreEdges(min_count=2)(docs, units, store) == 1
    # all lower case: trimming would leave no name, so the span stays as extracted
    assert texts(units) == ["Bosch", "Toyota", "apple engineers"]


def test_stop_words_brackets_and_numbers(nlp, store):
    text = "The Who and Scottish Power ( SP ) watched the 2012 Olympic Games in London ."
    spans = [("The Who", "ORG"), ("Scottish Power ( SP )", "ORG"), ("Olympic Games in", "EVENT")]
    docs, units = typed_units(nlp, text, spans)
    assert StoreEdges(min_count=2)(docs, units, store) == 2
    # EVENT spans end in lower-case words ("election", "final"), never in a stop word ("in");
    # capitalised stop words ("The Who") belong to the name
    assert texts(units) == ["2012 Olympic Games", "Scottish Power", "The Who"]
    # each convention can be turned off
    docs, units = typed_units(nlp, text, spans)
    assert StoreEdges(min_count=2, stop_words=False, brackets=False, numbers=False)(docs, units, store) == 0
    docs, units = typed_units(nlp, text, spans)
    StoreEdges(min_count=2, number_rate=1.5)(docs, units, store)
    assert "Olympic Games" in texts(units)
    # a span made of stop words only, or starting with a bracket, is left alone
    docs, units = typed_units(nlp, "we ( they ) won .", [("we", "ORG"), ("( they )", "ORG")])
    assert StoreEdges(min_count=2)(docs, units, store) == 0


def test_merges_into_an_extracted_shorter_span(nlp, store):
    text = "They met Siemens executives ."
    docs, units = typed_units(nlp, text, [("Siemens executives", "ORG"), ("Siemens", "ORG")])
    units[0].candidates[(9, 16)].extracted_by = {"other"}
    assert StoreEdges(min_count=2)(docs, units, store) == 1
    (cand,) = units[0].candidates.values()
    assert cand.text == "Siemens" and cand.extracted_by == {"m", "other"} and cand.refined_from == "Siemens executives"


def test_untyped_candidates_and_empty_store(nlp, store):
    docs, units = typed_units(nlp, "They met Siemens executives .", [("Siemens executives", None)])
    assert StoreEdges(min_count=2)(docs, units, store) == 0
    docs, units = typed_units(nlp, "They met Siemens executives .", [("Siemens executives", "ORG")])
    assert StoreEdges()(docs, units, DemoStore(nlp.vocab, LABELS, HashEmbedder())) == 0
    assert texts(units) == ["Siemens executives"]


def test_rules_follow_the_store(nlp, store):
    edges = StoreEdges(min_count=2)
    assert edges.rules(store)["ORG"].lower_end
    store.add([make_doc(nlp, "Siemens executives resigned.", [("Siemens executives", "ORG")])] * 3)
    assert not edges.rules(store)["ORG"].lower_end  # 3 of 8 ORG spans end in a lower-case word now


@pytest.mark.parametrize("kwargs", [{"max_rate": 1.0}, {"max_rate": -0.1}, {"min_count": 0}, {"number_rate": 0.0}])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        StoreEdges(**kwargs)
