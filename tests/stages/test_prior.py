"""The store's type prior (k nearest labelled spans) and its use in classification."""
import math

import pytest

from spacy_el4ner.sentences import split_units
from spacy_el4ner.stages import Settings, classify, extract
from spacy_el4ner.stages.prior import StoreKNNPrior, apply_prior
from spacy_el4ner.store import DemoStore

from conftest import FakeModel, HashEmbedder, make_doc

LABELS = ["PER", "ORG", "LOC"]
TEXT = "Barack Obama flew from Paris to London, then back to Paris."


@pytest.fixture
def jordan_store(nlp):
    """"Jordan" twice as LOC, once as PER, and unrelated spans."""
    docs = [
        make_doc(nlp, "Jordan borders Israel.", [("Jordan", "LOC"), ("Israel", "LOC")]),
        make_doc(nlp, "We drove to Jordan.", [("Jordan", "LOC")]),
        make_doc(nlp, "Jordan scored again for Chicago.", [("Jordan", "PER"), ("Chicago", "ORG")]),
    ]
    store = DemoStore(nlp.vocab, LABELS, HashEmbedder())
    store.add(docs)
    return store


def test_knn_prior_by_hand(jordan_store):
    # the three "Jordan" spans have cosine 1 with the query, every other span less: with k=3
    # they share the weight equally -> PER 1/3, LOC 2/3, ORG 0; then 30% uniform is mixed in
    prior = StoreKNNPrior(k=3, temperature=0.05, mix=0.3)
    (dist,) = prior(["Jordan"], jordan_store, LABELS)
    assert dist["PER"] == pytest.approx(0.7 / 3 + 0.1, abs=1e-5)
    assert dist["LOC"] == pytest.approx(0.7 * 2 / 3 + 0.1, abs=1e-5)
    assert dist["ORG"] == pytest.approx(0.1, abs=1e-5)
    assert sum(dist.values()) == pytest.approx(1.0)


def test_knn_prior_k1_and_labels_outside_the_store(jordan_store):
    prior = StoreKNNPrior(k=1, mix=0.0)
    (dist,) = prior(["Chicago"], jordan_store, LABELS + ["MISC"])
    assert dist == pytest.approx({"PER": 0.0, "ORG": 1.0, "LOC": 0.0, "MISC": 0.0})


def test_knn_prior_without_spans_or_weight(nlp, jordan_store):
    empty = DemoStore(nlp.vocab, LABELS, HashEmbedder())
    assert StoreKNNPrior()(["Jordan"], empty, LABELS) is None
    no_encoder = DemoStore(nlp.vocab, LABELS, None)
    no_encoder.add(jordan_store.docs)
    assert StoreKNNPrior()(["Jordan"], no_encoder, LABELS) is None
    assert StoreKNNPrior(weight=0.0)(["Jordan"], jordan_store, LABELS) is None
    assert StoreKNNPrior()([], jordan_store, LABELS) is None


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"temperature": 0.0}, {"mix": 1.5}, {"weight": -1.0}])
def test_knn_prior_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        StoreKNNPrior(**kwargs)


def test_apply_prior_by_hand():
    # PER .5*.2 = .1, LOC .3*.8 = .24, none .2 * 1/2 (uniform level of two labels) = .1
    out = apply_prior({"PER": 0.5, "LOC": 0.3, "none": 0.2}, {"PER": 0.2, "LOC": 0.8})
    assert out == pytest.approx({"PER": 0.1 / 0.44, "LOC": 0.24 / 0.44, "none": 0.1 / 0.44})
    assert apply_prior({"PER": 0.5, "LOC": 0.5}, {"PER": 0.9, "LOC": 0.1}, weight=0.0) == {"PER": 0.5, "LOC": 0.5}
    assert apply_prior({"PER": 0.5, "LOC": 0.5}, None) == {"PER": 0.5, "LOC": 0.5}
    # weight 0.5: square roots of the prior
    half = apply_prior({"PER": 0.5, "LOC": 0.5}, {"PER": 0.81, "LOC": 0.01}, weight=0.5)
    assert half["PER"] == pytest.approx(0.9 / 1.0)


def test_classify_with_prior_follows_the_store(nlp, labelled_docs):
    settings = Settings(labels=list(LABELS))
    docs = [nlp(TEXT)]
    units = split_units(docs[0], 0, 200)
    extract(docs, units, {"x": FakeModel("x", {TEXT: '["Barack Obama", "Paris", "London"]'})}, settings)
    store = DemoStore(nlp.vocab, LABELS, HashEmbedder())
    store.add(labelled_docs)  # Paris and London are LOC there
    member = FakeModel("a", labels={"Barack Obama": "PER", "Paris": "ORG", "London": "LOC"})
    classify(units, {"a": member}, settings, prior=StoreKNNPrior(k=1, mix=0.01, weight=1.0), store=store)
    cands = {c.text: c for c in units[0].candidates.values()}
    # the member's 0.9 on ORG for Paris loses against the store's near-certain LOC
    assert cands["Paris"].label == "LOC"
    assert cands["Paris"].type_prior["LOC"] > 0.99
    assert cands["Barack Obama"].label == "PER"
    assert cands["London"].label == "LOC"
    assert sum(cands["Paris"].label_probs["a"].values()) == pytest.approx(1.0)
    # the same without the prior: the member decides
    units2 = split_units(docs[0], 0, 200)
    extract(docs, units2, {"x": FakeModel("x", {TEXT: '["Paris"]'})}, settings)
    classify(units2, {"a": member}, settings)
    assert [(c.label, c.type_prior) for c in units2[0].candidates.values()] == [("ORG", None)] * 2  # Paris twice


def test_classify_single_label_ignores_prior(nlp, labelled_docs):
    settings = Settings(labels=["LOC"])
    docs = [nlp(TEXT)]
    units = split_units(docs[0], 0, 200)
    extract(docs, units, {"x": FakeModel("x", {TEXT: '["Paris"]'})}, settings)
    store = DemoStore(nlp.vocab, [], HashEmbedder())
    store.add(labelled_docs)
    classify(units, {"a": FakeModel("a")}, settings, prior=StoreKNNPrior(), store=store)
    assert [(c.label, c.type_prior) for c in units[0].candidates.values()] == [("LOC", None)] * 2  # Paris twice


# -- entity prior ----------------------------------------------------------------------------
def test_entity_prior_negatives_and_scores(jordan_store):
    from spacy_el4ner.stages.prior import StoreEntityPrior

    prior = StoreEntityPrior(k=1, temperature=0.05)
    negs = prior.negatives(jordan_store)
    # n-grams outside entities, without a stop word at either edge
    assert "borders" in negs and "drove" in negs and "scored" in negs
    assert "Jordan" not in negs and "to Jordan" not in negs and "We drove" not in negs
    assert not any(n.split()[0].lower() in ("we", "to", "for") for n in negs)
    # k=1: the nearest neighbour decides; exact copies have cosine 1
    assert prior(["Jordan", "borders"], jordan_store) == pytest.approx([1.0, 0.0])
    assert StoreEntityPrior(max_negatives=2).negatives(jordan_store) == StoreEntityPrior(max_negatives=2).negatives(jordan_store)
    assert len(StoreEntityPrior(max_negatives=2).negatives(jordan_store)) == 2


def test_entity_prior_by_hand_k4(jordan_store):
    from spacy_el4ner.stages.prior import StoreEntityPrior

    # bag-of-words query (Jordan: 2, scored: 1), norm sqrt(5): cosine 2/sqrt(5) with each of the
    # three "Jordan" entity spans, 1/sqrt(5) with the non-entity "scored", less with the rest
    (p,) = StoreEntityPrior(k=4, temperature=0.5)(["Jordan Jordan scored"], jordan_store)
    w_scored = math.exp((1 / math.sqrt(5) - 2 / math.sqrt(5)) / 0.5)
    assert p == pytest.approx(3 / (3 + w_scored), abs=1e-5)


def test_entity_prior_off_or_unavailable(nlp, jordan_store):
    from spacy_el4ner.stages.prior import StoreEntityPrior

    assert StoreEntityPrior(weight=0.0)(["Jordan"], jordan_store) is None
    assert StoreEntityPrior()(["Jordan"], DemoStore(nlp.vocab, LABELS, HashEmbedder())) is None
    with pytest.raises(ValueError):
        StoreEntityPrior(max_negatives=0)
