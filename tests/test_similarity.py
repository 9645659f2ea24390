import numpy
import pytest

from spacy_el4ner.models.protocol import ModelLoadError
from spacy_el4ner.similarity import (
    DEFAULT_OTHER_WEIGHT,
    DEFAULT_POS_WEIGHTS,
    HFEncoder,
    span_sim,
    span_sim_many,
    span_weight,
)


def test_span_sim_hand_computed():
    # Query spans s1 = (1, 0), s2 = (0, 1) with weights w1 = 1.0, w2 = 0.5.
    # Demonstration spans c1 = (0.6, 0.8), c2 = (1, 0).
    # max_c cos(s1, c) = max(0.6, 1.0) = 1.0
    # max_c cos(s2, c) = max(0.8, 0.0) = 0.8
    # SpanSim = (1.0 * 1.0 + 0.5 * 0.8) / (1.0 + 0.5) = 1.4 / 1.5 = 0.93333...
    query = numpy.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    cand = numpy.array([[0.6, 0.8], [1.0, 0.0]], dtype="float32")
    assert span_sim(query, [1.0, 0.5], cand) == pytest.approx(1.4 / 1.5, abs=1e-6)
    # With equal weights: (1.0 + 0.8) / 2 = 0.9
    assert span_sim(query, [1.0, 1.0], cand) == pytest.approx(0.9, abs=1e-6)


def test_span_sim_zero_spans_or_weights():
    q = numpy.array([[1.0, 0.0]], dtype="float32")
    empty = numpy.zeros((0, 2), dtype="float32")
    assert span_sim(empty, [], q) == 0.0
    assert span_sim(q, [1.0], empty) == 0.0
    assert span_sim(q, [0.0], q) == 0.0


def test_span_sim_many_equals_span_sim_per_doc():
    rng = numpy.random.default_rng(0)

    def unit(n):
        x = rng.normal(size=(n, 8))
        return (x / numpy.linalg.norm(x, axis=1, keepdims=True)).astype("float32")

    query = unit(3)
    weights = [1.0, 0.6, 0.1]
    per_doc = [unit(2), unit(0), unit(4), unit(1)]  # doc 1 has no spans
    cands = numpy.concatenate(per_doc)
    owners = numpy.concatenate([numpy.full(len(c), i) for i, c in enumerate(per_doc)]).astype("int64")
    got = span_sim_many(query, weights, cands, owners, len(per_doc) + 1)  # doc 4: no spans either
    expected = [span_sim(query, weights, c) for c in per_doc] + [0.0]
    assert got.shape == (5,)
    assert got == pytest.approx(expected, abs=1e-6)
    assert got[1] == 0.0 and got[4] == 0.0
    assert numpy.all(span_sim_many(query[:0], [], cands, owners, 5) == 0.0)


def test_span_sim_many_negative_similarities():
    # all cosines negative: the max is still taken per doc (not clipped at 0)
    query = numpy.array([[1.0, 0.0]], dtype="float32")
    cands = numpy.array([[-1.0, 0.0], [-0.6, -0.8]], dtype="float32")
    owners = numpy.array([0, 0])
    assert span_sim_many(query, [1.0], cands, owners, 1)[0] == pytest.approx(-0.6)
    assert span_sim(query, [1.0], cands) == pytest.approx(-0.6)


def test_span_weight_order():
    w = DEFAULT_POS_WEIGHTS
    propn = span_weight(["PROPN"], w)
    noun = span_weight(["NOUN"], w)
    other = span_weight(["DET"], w)
    assert propn > noun > other
    assert other == DEFAULT_OTHER_WEIGHT
    assert span_weight(["DET", "PROPN", "ADP"], w) == propn  # the largest
    assert span_weight([], w) == 1.0
    assert span_weight(["", ""], w) == 1.0
    assert span_weight(["DET"], w, other=0.05) == 0.05


# -- HFEncoder (tiny random BERT) --------------------------------------------------------------
def test_hf_encoder_embeds_unit_rows(tiny_bert_path):
    enc = HFEncoder(tiny_bert_path, batch_size=2)
    texts = ["Paris", "Tim Cook", "Apple hired Tim Cook in Cupertino.", "Paris"]
    vecs = enc.embed(texts)
    assert vecs.shape == (4, 16)
    assert vecs.dtype == numpy.float32
    assert numpy.linalg.norm(vecs, axis=1) == pytest.approx(numpy.ones(4), abs=1e-5)
    assert numpy.array_equal(vecs[0], vecs[3])
    assert not numpy.allclose(vecs[0], vecs[1])
    # memoised, and the same when computed alone
    assert numpy.allclose(enc.embed(["Tim Cook"])[0], vecs[1], atol=1e-5)
    assert enc.dim == 16
    assert enc.embed([]).shape == (0, 16)


def test_hf_encoder_missing_folder(tmp_path):
    enc = HFEncoder(str(tmp_path / "no-such-encoder"))
    with pytest.raises(ModelLoadError, match="no-such-encoder"):
        enc.embed(["Paris"])
