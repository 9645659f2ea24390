"""Combine what the members said: union of extractions, votes over types, confidence."""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import Errors

NONE_LABEL = "none"
VOTING_RULES = ("majority", "soft", "first")


def softmax(logps: Sequence[float]) -> List[float]:
    """RETURNS (List[float]): Normalised probabilities from log-scores."""
    if not logps:
        return []
    top = max(logps)
    exps = [math.exp(x - top) for x in logps]
    total = sum(exps)
    return [e / total for e in exps]


def vote(
    probs: Mapping[str, Mapping[str, float]],
    labels: Sequence[str],
    rule: str = "majority",
    members: Optional[Sequence[str]] = None,
) -> Tuple[Optional[str], float, Dict[str, Optional[str]]]:
    """Choose a span's label from the members' distributions over ``labels`` + "none".

    probs: member -> option -> probability (options are the labels and "none").
    labels: The label set, in config order (used to break ties).
    rule: "majority": each member votes its most probable option ("none" included: saying
            "not an entity" is a vote); the option with most votes wins; ties go to the option
            of the earliest member in ``members`` (list the strongest first). A member without
            scores abstains. "none" winning, or no votes at all: None.
        "soft": the option with the highest summed probability wins ("none" included).
        "first": only the first member decides (the ablation without voting).
    members: Member order (default: the order of ``probs``).
    RETURNS: (label or None, mean probability of the label over members, member -> vote).
    """
    if rule not in VOTING_RULES:
        raise ValueError(Errors.E050.format(options=VOTING_RULES, value=rule))
    order = list(members) if members is not None else list(probs)
    order = [m for m in order if m in probs]
    votes: Dict[str, Optional[str]] = {}
    for m in order:
        dist = probs[m]
        best = max(dist.items(), key=lambda kv: (kv[1], -_rank(kv[0], labels)))[0] if dist else NONE_LABEL
        votes[m] = None if best == NONE_LABEL else best
    if not order:
        return None, 0.0, votes
    summed = {opt: sum(probs[m].get(opt, 0.0) for m in order) for opt in list(labels) + [NONE_LABEL]}
    if rule == "first":
        winner = votes[order[0]]
    elif rule == "soft":
        best = max(summed.items(), key=lambda kv: (kv[1], -_rank(kv[0], labels)))[0]
        winner = None if best == NONE_LABEL else best
    else:
        counts: Dict[str, int] = {}
        first_voter: Dict[str, int] = {}
        for pos, m in enumerate(order):
            if not probs[m]:
                continue  # no scores: the member abstains
            option = votes[m] if votes[m] is not None else NONE_LABEL
            counts[option] = counts.get(option, 0) + 1
            first_voter.setdefault(option, pos)
        if not counts:
            winner = None
        else:
            best = max(counts, key=lambda opt: (counts[opt], -first_voter[opt]))
            winner = None if best == NONE_LABEL else best
    if winner is None:
        return None, 0.0, votes
    voters = [m for m in order if probs[m]]  # a member without scores abstains: not in the mean
    mean_p = summed.get(winner, 0.0) / max(len(voters), 1)
    return winner, mean_p, votes


def _top(dist: Mapping[str, float]) -> str:
    return max(dist.items(), key=lambda kv: kv[1])[0]


def decided(probs: Mapping[str, Mapping[str, float]], asked: Sequence[str], remaining: int) -> bool:
    """Whether a "majority" vote is settled whatever the ``remaining`` members would say.

    The leader (most votes; ties to the earliest member) is settled when no other option can
    overtake it: its votes >= any other option's votes + ``remaining`` (a tie it keeps, since
    its first voter comes before every remaining member).
    """
    counts: Dict[str, int] = {}
    for m in asked:
        if m in probs and probs[m]:
            top = _top(probs[m])
            counts[top] = counts.get(top, 0) + 1
    if not counts:
        return remaining == 0
    order = [_top(probs[m]) for m in asked if m in probs and probs[m]]
    leader = max(counts, key=lambda o: (counts[o], -order.index(o)))
    runner_up = max([c for o, c in counts.items() if o != leader] or [0])
    return counts[leader] >= runner_up + remaining


def _rank(option: str, labels: Sequence[str]) -> int:
    try:
        return list(labels).index(option)
    except ValueError:
        return len(labels)


def acceptance(
    label: Optional[str],
    label_score: float,
    validation: Optional[float],
    validation_threshold: float,
    min_confidence: float,
    entity_score: Optional[float] = None,
) -> Tuple[float, bool]:
    """A typed candidate's confidence (label score x validation P(yes) x the store's entity
    score; a factor that was not computed counts as 1) and whether it becomes an entity: it
    needs a label, ``P(yes) >= validation_threshold`` when validated, and ``confidence >=
    min_confidence``.

    RETURNS (Tuple[float, bool]): (confidence, accepted).
    """
    confidence = label_score * (validation if validation is not None else 1.0)
    confidence *= entity_score if entity_score is not None else 1.0
    accepted = (
        label is not None
        and (validation is None or validation >= validation_threshold)
        and confidence >= min_confidence
    )
    return confidence, accepted
