"""Stage 3: every member scores each label for each span; the members vote."""
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..ensemble import decided, softmax, vote
from ..finetune import format as ft_format
from ..models.protocol import Model
from ..prompts import render
from ..runner import run_with
from ..ty import Score, Step
from ..types import Candidate, Unit
from .common import Settings, prompts_per_view
from .prior import TypePrior, apply_prior

logger = logging.getLogger("spacy_el4ner")


def classify(
    units: List[Unit],
    members: Mapping[str, Model],
    settings: Settings,
    voting: str = "majority",
    lazy: bool = True,
    prior: Optional[TypePrior] = None,
    store: Optional[Any] = None,
) -> None:
    """``classify_steps`` with ``members``' models answering."""
    run_with(members, classify_steps(units, list(members), settings, voting, lazy, prior, store))


def classify_steps(
    units: List[Unit],
    members: Sequence[str],
    settings: Settings,
    voting: str = "majority",
    lazy: bool = True,
    prior: Optional[TypePrior] = None,
    store: Optional[Any] = None,
) -> Step[None]:
    """Type every candidate by scoring each label as the answer; then vote.

    A step: members are asked in order, one ``Score`` request a round. With "majority" voting and ``lazy``, a member is not asked about a span whose
    outcome the remaining members can no longer change (e.g. the second of two members, since
    ties go to the first): the result is the same as asking everyone, at a fraction of the cost.
    With "first" only the first member is asked. With a single label no
    model is called: that option has probability 1. With a ``prior`` (and its ``store``), each
    member's distribution is multiplied by the span's prior (``stages.prior``) before the vote.
    A ``settings.finetune_prompt`` member whose votes are "extracted" is not prompted: its
    distribution is uniform over the labels it extracted the span under, and empty (it abstains)
    on a span it did not find. With votes "scored" its distribution on a span it
    found is instead the softmax over the labels of log P(``<<< span >>>`` | the fine-tuning prompt
    of the label), the span as the first line of the answer: a label it did not extract the span
    under can still win, and ties between labels are broken by the model.
    Sets ``candidate.type_prior``, ``label_probs`` (with the prior), ``votes``, ``label`` (None:
    no label won) and ``label_score``.
    """
    options = list(settings.labels)
    pairs = [(unit, cand) for unit in units for cand in unit.candidates.values()]
    jobs: List[Candidate] = [cand for _, cand in pairs]
    if not jobs:
        return
    prompts_of = prompts_per_view(
        settings, pairs, "classify",
        lambda unit, cand, ctx: render(
            *settings.template("classify"), text=unit.text, span=cand.text, options=options, **ctx
        ),
    )
    priors = prior([c.text for c in jobs], store, settings.labels) if prior is not None and len(options) > 1 else None
    weight = prior.weight if prior is not None else 0.0
    if priors is not None:
        for cand, p in zip(jobs, priors):
            cand.type_prior = p
    names = list(members)
    if voting == "first":
        names = names[:1]

    def voters_left(i: int, pos: int) -> int:
        """The members from ``pos`` on that can vote on candidate ``i``: a spaCy member that did
        not predict the span abstains, and that is known before asking anyone."""
        unit, cand = pairs[i]
        return sum(
            1 for n in names[pos:] if n not in settings.span_members or unit.predicted.get(cand.key, {}).get(n)
        )

    for pos, name in enumerate(names):
        todo = [
            i
            for i, cand in enumerate(jobs)
            if not (lazy and voting == "majority" and decided(cand.label_probs, names[:pos], voters_left(i, pos)))
        ]
        if not todo:
            break
        if settings.votes_of(name) == "scored":
            found_by = [i for i in todo if jobs[i].extracted_as.get(name)]
            dists = yield from finetune_prompt_scores(name, [(pairs[i][0].text, jobs[i].text) for i in found_by], settings)
            for i in todo:
                jobs[i].label_probs[name] = {}
            for i, dist in zip(found_by, dists):
                full = {o: dist.get(o, 0.0) for o in options}
                jobs[i].label_probs[name] = apply_prior(full, jobs[i].type_prior, weight)
            continue
        if settings.votes_of(name) == "predicted":
            # a spaCy member: its probability on the label(s) it predicted, the rest shared by the
            # other labels; it abstains on spans it did not find
            for i in todo:
                got = pairs[i][0].predicted.get(jobs[i].key, {}).get(name, {})
                dist = _spread(got, options) if got else {}
                jobs[i].label_probs[name] = apply_prior(dist, jobs[i].type_prior, weight) if dist else {}
            continue
        if settings.votes_of(name) == "extracted":
            for i in todo:
                found = jobs[i].extracted_as.get(name, set())
                dist = {o: (1.0 / len(found) if o in found else 0.0) for o in options} if found else {}
                jobs[i].label_probs[name] = apply_prior(dist, jobs[i].type_prior, weight) if dist else {}
            continue
        if len(options) == 1:
            # one label (e.g. NCBI-disease): its probability is 1 whatever the
            # model says, so the answer is known without a forward pass
            scores = [[0.0] for _ in todo]
        else:
            prompts = prompts_of(settings.view_of(name))
            (scores,) = yield [Score(name, [prompts[i] for i in todo], [list(options) for _ in todo])]
        for i, logps in zip(todo, scores):
            jobs[i].label_probs[name] = apply_prior(dict(zip(options, softmax(logps))), jobs[i].type_prior, weight)
    for cand in jobs:
        asked = [n for n in names if n in cand.label_probs]
        cand.label, cand.label_score, cand.votes = vote(cand.label_probs, settings.labels, voting, asked)
        logger.debug("classify %r: %s -> %s", cand.text, cand.votes, cand.label)


def _spread(probs: Dict[str, float], options: List[str]) -> Dict[str, float]:
    """A distribution over ``options`` from a spaCy member's label probabilities: the mass they leave
    is shared equally by the other options."""
    known = {o: probs[o] for o in options if o in probs}
    total = sum(known.values())
    if total > 1.0:
        known = {o: p / total for o, p in known.items()}
        total = 1.0
    rest = [o for o in options if o not in known]
    share = (1.0 - total) / len(rest) if rest else 0.0
    return {o: known.get(o, share) for o in options}


def finetune_prompt_scores(member: str, items: List[Tuple[str, str]], settings: Settings) -> Step[List[Dict[str, float]]]:
    """Type spans with a fine-tuning-prompt member by scoring, not by its extraction answers.

    One prompt per text and label, with the text's spans as its continuations, so each prompt is
    read once whatever the number of spans.
    items (List[Tuple[str, str]]): (unit text, span text) pairs.
    RETURNS (List[Dict[str, float]]): Per pair, the softmax over ``settings.labels`` of
        log P(``<<< span >>>`` | the fine-tuning prompt of the label), the span as the answer's
        first line. One label: probability 1, no model call.
    """
    labels = list(settings.labels)
    if len(labels) == 1:
        return [{labels[0]: 1.0} for _ in items]
    spans_of: Dict[str, List[str]] = {}
    for text, span in items:
        spans_of.setdefault(text, [])
        if span not in spans_of[text]:
            spans_of[text].append(span)
    descriptions = ft_format.descriptions_for(labels, settings.descriptions)
    jobs = [(text, label) for text in spans_of for label in labels]
    prompts = [ft_format.build_messages(text, label, descriptions[label]) for text, label in jobs]
    conts = [[ft_format.format_answer([span]) for span in spans_of[text]] for text, _ in jobs]
    logp: Dict[Tuple[str, str, str], float] = {}
    answers = (yield [Score(member, prompts, conts)])[0] if prompts else []
    for (text, label), scores in zip(jobs, answers):
        for span, score in zip(spans_of[text], scores):
            logp[(text, label, span)] = score
    return [dict(zip(labels, softmax([logp[(text, label, span)] for label in labels]))) for text, span in items]
