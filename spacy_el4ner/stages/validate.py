"""Stage 4: self-validation. A verifier answers "is X a LABEL here?"; spans it rejects are dropped."""
import logging
from typing import List, Mapping, Sequence, Tuple

from ..ensemble import softmax
from ..models.protocol import Model
from ..prompts import render
from ..runner import run_with
from ..ty import Score, Step
from ..types import Candidate, Unit
from .common import Settings, prompts_per_view

logger = logging.getLogger("spacy_el4ner")

YES_NO = ("Yes", "No")


def validate(
    units: List[Unit], verifiers: Mapping[str, Model], settings: Settings, skip_below: float = 0.0, skip_above: float = 1.0
) -> None:
    """``validate_steps`` with the ``verifiers``' models answering."""
    run_with(verifiers, validate_steps(units, list(verifiers), settings, skip_below, skip_above))


def validate_steps(
    units: List[Unit], verifiers: Sequence[str], settings: Settings, skip_below: float = 0.0, skip_above: float = 1.0
) -> Step[None]:
    """Set ``candidate.validation`` = mean P(Yes) over the verifiers, for every typed candidate.
    Each verifier sees the demonstrations of its view (``Settings.member_demo_views``), as in
    extraction and classification, so views of one model verify as different judges.

    skip_below (float): Candidates whose label score (times their entity score, when set) is
        below this are not asked (their confidence could not reach it anyway); they keep
        ``validation`` None.
    skip_above (float): Candidates whose label score is above this are not asked either (kept
        as typed) when classification had a choice (more than one label); 1.0: never.
    """
    choice = len(settings.labels) > 1
    jobs: List[Tuple[Unit, Candidate]] = []
    for unit in units:
        for cand in unit.candidates.values():
            bound = cand.label_score * (cand.entity_score if cand.entity_score is not None else 1.0)
            if cand.label is None or bound < skip_below or (choice and cand.label_score > skip_above):
                continue
            jobs.append((unit, cand))
    if not jobs or not verifiers:
        return
    prompts_of = prompts_per_view(
        settings, jobs, "validate",
        lambda unit, cand, ctx: render(
            *settings.template("validate"), text=unit.text, span=cand.text, label=cand.label, **ctx
        ),
    )
    totals = [0.0] * len(jobs)
    requests = [Score(name, prompts_of(settings.view_of(name)), [list(YES_NO) for _ in jobs]) for name in verifiers]
    for answers in (yield requests):
        for i, logps in enumerate(answers):
            totals[i] += softmax(logps)[0]
    for (_, cand), total in zip(jobs, totals):
        cand.validation = total / len(verifiers)
        logger.debug("validate %r as %s: P(yes)=%.3f", cand.text, cand.label, cand.validation)
