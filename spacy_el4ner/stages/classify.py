"""Stage 3: every member scores each label for each span; the members vote."""
import logging
from typing import List, Mapping

from ..ensemble import NONE_LABEL, softmax, vote
from ..models.protocol import Model
from ..prompts import render
from ..types import Candidate, Unit
from .common import Settings

logger = logging.getLogger("spacy_el4ner")


def classify(units: List[Unit], members: Mapping[str, Model], settings: Settings, voting: str = "majority") -> None:
    """Type every candidate by scoring each option (labels + "none") as the answer.

    Sets ``candidate.label_probs``, ``votes``, ``label`` (None: no label won) and ``label_score``.
    With voting="first" only the first member is asked.
    """
    options = list(settings.labels) + ([NONE_LABEL] if settings.none_option else [])
    jobs: List[Candidate] = []
    prompts: List[str] = []
    for unit in units:
        ctx = settings.context(unit.demos)
        for cand in unit.candidates.values():
            jobs.append(cand)
            prompts.append(
                render(settings.templates["classify"], settings.prompt_dir, text=unit.text, span=cand.text, options=options, **ctx)
            )
    if not jobs:
        return
    names = list(members)
    if voting == "first":
        names = names[:1]
    for name in names:
        scores = members[name].score(prompts, [options] * len(prompts))
        for cand, logps in zip(jobs, scores):
            cand.label_probs[name] = dict(zip(options, softmax(logps)))
    for cand in jobs:
        cand.label, cand.label_score, cand.votes = vote(cand.label_probs, settings.labels, voting, names)
        logger.debug("classify %r: %s -> %s", cand.text, cand.votes, cand.label)
