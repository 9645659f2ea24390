"""Optional stage after self-validation: boundary refinement.

Small extractors often copy a word too many after the name ("Siemens executives", "Trump
supporter", "Lil Darth Vader kitten"). For each typed multi-token candidate that ends in a
lower-case word, the verifier is asked to copy the complete name and both answers (with and
without that word) are scored; the shorter one replaces the candidate when it is more probable.
Only the end is trimmed, and the question is a copy task rather than "is X a LABEL?": asked
that, the 0.5B verifier gave near-equal P(yes) to both variants and preferred generic heads
("Party" over "BPF Party") when the first word was dropped.
"""
import logging
from typing import List, Mapping, Optional, Tuple

from spacy.tokens import Doc

from ..models.protocol import Model
from ..prompts import render
from ..types import Candidate, Unit
from .common import Settings, prompts_per_view

logger = logging.getLogger("spacy_el4ner")


def trimmed_variant(doc: Doc, unit: Unit, cand: Candidate) -> Optional[Tuple[int, int]]:
    """The candidate without its last token (character offsets in the unit), when it has at
    least two tokens and the last one is a lower-case word; None otherwise, and when the
    shorter span would end in punctuation."""
    span = doc.char_span(unit.offset + cand.start, unit.offset + cand.end)
    if span is None or len(span) < 2 or not span[-1].is_lower:
        return None
    sub = span[:-1]
    if sub[-1].is_punct or not sub.text.strip():
        return None
    return (sub.start_char - unit.offset, sub.end_char - unit.offset)


def refine(
    docs: List[Doc], units: List[Unit], verifiers: Mapping[str, Model], settings: Settings, margin: float = 0.0
) -> int:
    """Replace typed multi-token candidates that end in a lower-case word by the span without
    that word when the verifiers prefer it as the copied name (each verifier with the
    demonstrations of its view, as in validation).

    The verifiers are asked to copy "the complete name of the LABEL that begins with W" (W: the
    candidate's first word) and score both answers, ``"short"`` and ``"full"``, as
    continuations (summed log-probabilities, averaged over the verifiers). The short one wins
    when it is more probable by more than ``margin`` (in nats). It keeps the candidate's label,
    votes and validation; ``refined_from`` records the extracted text. A variant that is already
    a candidate of its own is left to the overlap rule.
    RETURNS (int): How many candidates were replaced.
    """
    template = settings.templates.get("boundary", "boundary.v1.jinja")
    jobs: List[Tuple[Unit, Candidate, Tuple[int, int]]] = []
    options: List[List[str]] = []
    for unit in units:
        doc = docs[unit.doc_index]
        for cand in list(unit.candidates.values()):
            key = trimmed_variant(doc, unit, cand) if cand.label is not None else None
            if key is None or key in unit.candidates:
                continue
            jobs.append((unit, cand, key))
            options.append([f'"{unit.text[key[0] : key[1]]}"', f'"{cand.text}"'])
    if not jobs or not verifiers:
        return 0
    prompts_of = prompts_per_view(
        settings, [(unit, cand) for unit, cand, _ in jobs], "boundary",
        lambda unit, cand, ctx: render(
            template, settings.prompt_dir, text=unit.text, first=cand.text.split()[0], label=cand.label, **ctx
        ),
    )
    gains = [0.0] * len(jobs)
    for name, model in verifiers.items():
        for i, logps in enumerate(model.score(prompts_of(settings.view_of(name)), options)):
            gains[i] += (logps[0] - logps[1]) / len(verifiers)
    replaced = 0
    for (unit, cand, key), gain in zip(jobs, gains):
        logger.debug("boundary %r vs %r (%s): log-ratio %.3f", unit.text[key[0] : key[1]], cand.text, cand.label, gain)
        if gain <= margin or key in unit.candidates or cand.key not in unit.candidates:
            continue
        del unit.candidates[cand.key]
        unit.candidates[key] = Candidate(
            start=key[0], end=key[1], text=unit.text[key[0] : key[1]], extracted_by=set(cand.extracted_by),
            extracted_as={m: set(ls) for m, ls in cand.extracted_as.items()},
            votes=dict(cand.votes), label_probs=dict(cand.label_probs), label=cand.label,
            label_score=cand.label_score, validation=cand.validation, refined_from=cand.text,
        )
        replaced += 1
    return replaced
