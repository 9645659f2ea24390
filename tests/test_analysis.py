"""Stage-by-stage error analysis on hand-built predictions."""
import spacy
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example

from spacy_el4ner.analysis import stage_breakdown

WORDS = ["Tim", "Cook", "met", "Siemens", "executives", "in", "Berlin", "and", "Paris", "today"]


def _doc(nlp, ents):
    doc = Doc(nlp.vocab, words=WORDS)
    doc.ents = [Span(doc, s, e, label=l) for s, e, l in ents]
    return doc


def test_stage_breakdown_counts_each_loss():
    nlp = spacy.blank("en")
    ref = _doc(nlp, [(0, 2, "PER"), (3, 4, "ORG"), (6, 7, "LOC"), (8, 9, "LOC")])
    pred = _doc(nlp, [(0, 2, "PER"), (3, 5, "ORG"), (6, 7, "ORG")])
    cands = [  # (start, end, label, accepted, extracted_by)
        (0, 2, "PER", True, ["a", "b"]),   # found, typed, kept: true positive
        (3, 4, "ORG", False, ["b"]),       # found by b only, typed, rejected by validation
        (3, 5, "ORG", True, ["a"]),        # boundary false positive
        (6, 7, "ORG", True, ["a"]),        # gold span, wrong type
        (9, 10, None, False, ["b"]),       # untyped, not predicted
    ]
    group = SpanGroup(pred, name="el4ner", spans=[Span(pred, s, e, label=l or "none") for s, e, l, _, _ in cands])
    group.attrs["details"] = [{"label": l, "accepted": a, "extracted_by": m} for _, _, l, a, m in cands]
    pred.spans["el4ner"] = group
    st = stage_breakdown([Example(pred, ref)])
    assert (st["gold"], st["extracted"], st["typed"], st["accepted"], st["in_ents"]) == (4, 3, 2, 1, 1)
    assert (st["untyped"], st["mistyped"]) == (0, 1)
    assert st["extracted_by"] == {"a": 2, "b": 2} and st["only_by"] == {"b": 1, "a": 1}
    assert (st["predicted"], st["fp_type"], st["fp_boundary"], st["fp_spurious"]) == (3, 1, 1, 0)
    assert st["extracted_pct"] == 75.0 and st["in_ents_pct"] == 25.0


def test_stage_breakdown_without_candidates():
    nlp = spacy.blank("en")
    ref = _doc(nlp, [(6, 7, "LOC")])
    pred = _doc(nlp, [(9, 10, "LOC")])
    st = stage_breakdown([Example(pred, ref)])
    assert (st["gold"], st["extracted"], st["fp_spurious"]) == (1, 0, 1)


def test_paired_bootstrap_sees_a_clear_margin_and_a_tie():
    from spacy_el4ner.analysis import paired_bootstrap

    better = [(1, 0, 0)] * 50 + [(0, 1, 1)] * 10  # 50 of 60 sentences right
    worse = [(1, 0, 0)] * 30 + [(0, 1, 1)] * 30  # 30 of 60
    res = paired_bootstrap(better, worse, samples=500, seed=1)
    assert res["f1_a"] == 83.33 and res["f1_b"] == 50.0
    assert res["ci_low"] > 0 and res["p_not_better"] == 0.0 and res["sentences"] == 60
    same = paired_bootstrap(worse, worse, samples=200)
    assert same["diff"] == 0.0 and same["ci_low"] == same["ci_high"] == 0.0 and same["p_not_better"] == 1.0
    # the same seed gives the same interval
    assert paired_bootstrap(better, worse, samples=500, seed=1) == res


def test_paired_bootstrap_refuses_unpaired_runs():
    import pytest

    from spacy_el4ner.analysis import paired_bootstrap

    with pytest.raises(ValueError, match="same sentences"):
        paired_bootstrap([(1, 0, 0)], [(1, 0, 0), (0, 1, 0)])
    with pytest.raises(ValueError, match="no sentences"):
        paired_bootstrap([], [])
