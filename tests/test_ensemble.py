import math

import pytest

from spacy_el4ner.ensemble import NONE_LABEL, VOTING_RULES, softmax, vote

LABELS = ["PER", "ORG", "LOC"]


def dist(best: str, p: float = 0.7) -> dict:
    """A distribution over LABELS + none with ``p`` on ``best``."""
    options = LABELS + [NONE_LABEL]
    rest = (1 - p) / (len(options) - 1)
    return {o: (p if o == best else rest) for o in options}


def test_softmax():
    assert softmax([]) == []
    probs = softmax([math.log(1), math.log(3)])
    assert probs == pytest.approx([0.25, 0.75])
    assert sum(softmax([-1000.0, -1001.0, -999.0])) == pytest.approx(1.0)


def test_majority_vote():
    probs = {"a": dist("ORG"), "b": dist("ORG", 0.5), "c": dist("PER", 0.9)}
    label, score, votes = vote(probs, LABELS, "majority")
    assert label == "ORG"
    assert votes == {"a": "ORG", "b": "ORG", "c": "PER"}
    expected = (0.7 + 0.5 + 0.1 / 3) / 3
    assert score == pytest.approx(expected)


def test_none_is_a_vote():
    probs = {"a": dist(NONE_LABEL), "b": dist(NONE_LABEL), "c": dist("PER", 0.99)}
    label, score, votes = vote(probs, LABELS, "majority")
    assert label is None
    assert score == 0.0
    assert votes == {"a": None, "b": None, "c": "PER"}


def test_tie_broken_by_member_order():
    probs = {"a": dist("PER"), "b": dist("ORG")}
    assert vote(probs, LABELS, "majority", members=["a", "b"])[0] == "PER"
    assert vote(probs, LABELS, "majority", members=["b", "a"])[0] == "ORG"
    # default order: that of ``probs``; and the result is the same every time
    assert {vote(probs, LABELS)[0] for _ in range(20)} == {"PER"}


def test_tie_with_none_broken_by_member_order():
    probs = {"a": dist(NONE_LABEL), "b": dist("LOC")}
    assert vote(probs, LABELS, "majority", members=["a", "b"])[0] is None
    assert vote(probs, LABELS, "majority", members=["b", "a"])[0] == "LOC"


def test_members_not_in_probs_are_ignored():
    probs = {"a": dist("LOC")}
    label, score, votes = vote(probs, LABELS, "majority", members=["ghost", "a"])
    assert label == "LOC"
    assert votes == {"a": "LOC"}
    assert score == pytest.approx(0.7)


def test_within_member_tie_goes_to_the_earlier_label():
    probs = {"a": {"PER": 0.4, "ORG": 0.4, "LOC": 0.1, NONE_LABEL: 0.1}}
    assert vote(probs, LABELS)[0] == "PER"
    assert vote(probs, ["ORG", "PER", "LOC"])[0] == "ORG"


def test_soft_rule_sums_probabilities():
    probs = {
        "a": {"PER": 0.5, "ORG": 0.45, "LOC": 0.0, NONE_LABEL: 0.05},
        "b": {"PER": 0.0, "ORG": 0.9, "LOC": 0.0, NONE_LABEL: 0.1},
        "c": {"PER": 0.6, "ORG": 0.4, "LOC": 0.0, NONE_LABEL: 0.0},
    }
    # majority: PER (a, c) beats ORG (b); soft: ORG 1.75 beats PER 1.1
    assert vote(probs, LABELS, "majority")[0] == "PER"
    label, score, _ = vote(probs, LABELS, "soft")
    assert label == "ORG"
    assert score == pytest.approx(1.75 / 3)


def test_soft_rule_none_can_win():
    probs = {"a": dist(NONE_LABEL, 0.9), "b": dist("PER", 0.5)}
    assert vote(probs, LABELS, "soft")[0] is None


def test_first_rule_only_first_member_decides():
    probs = {"a": dist("LOC"), "b": dist("PER"), "c": dist("PER")}
    label, _, votes = vote(probs, LABELS, "first")
    assert label == "LOC"
    assert vote(probs, LABELS, "first", members=["b", "a", "c"])[0] == "PER"
    assert votes["b"] == "PER"


def test_member_without_probs_abstains():
    probs = {"a": {}, "b": {}, "c": dist("ORG")}
    label, score, votes = vote(probs, LABELS, "majority")
    assert label == "ORG"  # a and b do not count as two "none" votes
    assert votes["c"] == "ORG"


def test_no_probs_at_all_gives_no_label():
    assert vote({}, LABELS) == (None, 0.0, {})
    assert vote({"a": {}}, LABELS, "majority")[0] is None


@pytest.mark.parametrize("rule", ["Majority", "avg", "", "none"])
def test_invalid_rule_raises(rule):
    with pytest.raises(ValueError, match="voting must be one of"):
        vote({"a": dist("PER")}, LABELS, rule)


def test_rules_constant():
    assert set(VOTING_RULES) == {"majority", "soft", "first"}


def test_acceptance_rule():
    from spacy_el4ner.ensemble import acceptance

    assert acceptance("PER", 0.8, 0.5, 0.0, 0.3) == (0.4, True)
    assert acceptance("PER", 0.8, 0.3, 0.0, 0.3) == (pytest.approx(0.24), False)  # confidence too low
    assert acceptance("PER", 0.8, 0.5, 0.55, 0.3)[1] is False  # P(yes) under validation_threshold
    assert acceptance("PER", 0.5, None, 0.9, 0.3) == (0.5, True)  # not validated: label score alone
    assert acceptance(None, 1.0, 1.0, 0.0, 0.0)[1] is False


def test_acceptance_with_entity_score():
    from spacy_el4ner.ensemble import acceptance

    assert acceptance("PER", 0.8, 0.5, 0.0, 0.3, 0.5) == (pytest.approx(0.2), False)
    assert acceptance("PER", 0.8, 0.5, 0.0, 0.3, 1.0) == (pytest.approx(0.4), True)
    assert acceptance("PER", 0.8, None, 0.0, 0.3, None) == (0.8, True)
