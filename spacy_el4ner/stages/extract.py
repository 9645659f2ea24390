"""Stage 2: span extraction by every member, few-shot; the union of what they found. A step
(``ty.Step``): it yields one ``Generate`` request per member and reads their answers."""
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc

from ..align import find_occurrences, snap
from ..finetune import format as ft_format
from ..models.protocol import Model
from ..parsing import clean_text, parse_answer
from ..prompts import Messages, render
from ..runner import run_with
from ..ty import Generate, Predict, Step
from ..types import Unit
from .common import Settings

logger = logging.getLogger("spacy_el4ner")

# No forced "[": in Qwen's vocabulary '["' is one token, and forcing "[" alone derails it.
ANSWER_PREFIX = ""
STOP = ("]",)
# The pieces of a JSON list of strings, for constrained decoding.
SEPARATORS = ('["', '", "', '"]', "[]", "[", "]", '"', ", ")


def extract_prompt(unit: Unit, settings: Settings, with_demos: bool, view: int = 0) -> Messages:
    ctx = settings.context(unit.demos_for(view) if with_demos else [], "extract")
    return render(*settings.template("extract"), text=unit.text, **ctx)


def finetune_prompt_request(
    name: str, units: List[Unit], settings: Settings
) -> Tuple[Optional[Generate], List[Tuple[int, str]], List[int]]:
    """The fine-tuning-prompt request of member ``name`` (``finetune.v1.jinja``: one prompt per unit
    and label, no demonstrations, answers as ``<<< mention >>>`` lines), the format its CLLMFS
    adapter was trained on. The prompts have no demonstrations, so pre-extraction (retrieval) and
    extraction would ask the same: a unit that has its answers in ``unit.finetune_items[name]`` is
    not asked again.
    RETURNS: The request (None: nothing to ask), its (unit index, label) jobs, the units asked.
    """
    descriptions = ft_format.descriptions_for(settings.labels, settings.descriptions)
    todo = [i for i, unit in enumerate(units) if name not in unit.finetune_items]
    jobs = [(i, label) for i in todo if units[i].text.strip() for label in settings.labels]
    if not jobs:
        return None, jobs, todo
    prompts = [ft_format.build_messages(units[i].text, label, descriptions[label]) for i, label in jobs]
    constrained = settings.constrains(name)
    request = Generate(
        name, prompts, settings.max_new_tokens,
        constrain_to=[units[i].text for i, _ in jobs] if constrained else None,
        separators=tuple(ft_format.SEPARATORS) if constrained else (),
    )
    return request, jobs, todo


def _finetune_items(units: List[Unit], name: str, jobs: List[Tuple[int, str]], todo: List[int], answers: List[str]) -> None:
    """Keep member ``name``'s fine-tuning-prompt answers in ``unit.finetune_items[name]``."""
    items: Dict[int, List[Tuple[str, str]]] = {i: [] for i in todo}
    for (i, label), answer in zip(jobs, answers):
        logger.debug("fine-tuning prompt (%s, %s) --> %r", name, label, answer)
        items[i].extend((label, mention) for mention in ft_format.parse_answer(answer))
    for i in todo:
        units[i].finetune_items[name] = items[i]


def extract_spans_steps(
    docs: List[Doc],
    units: List[Unit],
    members: Sequence[str],
    settings: Settings,
    with_demos: bool = True,
    answer_prefix: str = ANSWER_PREFIX,
) -> Step[List[Dict[Tuple[int, int], Set[str]]]]:
    """Ask every member (one request each, in one round) for the entity strings of every unit and
    align them to tokens.

    Every occurrence of an answer string is a span. Answers that match no token span are kept in
    ``unit.unaligned`` and logged at DEBUG, never dropped silently.
    RETURNS: Per unit, (start char, end char) in the unit -> the members that found it.
    """
    found: List[Dict[Tuple[int, int], Set[str]]] = [dict() for _ in units]
    if not units or not members:
        return found
    by_view: Dict[int, List[Messages]] = {}
    requests: List[Any] = []
    plan: List[Tuple[str, Any]] = []  # per member: how to read its answers
    for name in members:
        if name in settings.span_members:
            requests.append(Predict(name, [u.text for u in units]))
            plan.append((name, ("spans",)))
            continue
        if name in settings.finetune_prompt:
            asked_before = [name in u.finetune_items for u in units]
            request, jobs, todo = finetune_prompt_request(name, units, settings)
            plan.append((name, ("fine-tuned", request is not None, jobs, todo, asked_before)))
            if request is not None:
                requests.append(request)
            continue
        view = settings.view_of(name) if with_demos else 0
        if view not in by_view:
            by_view[view] = [extract_prompt(u, settings, with_demos, view) for u in units]
        constrained = settings.constrains(name)
        requests.append(Generate(
            name, by_view[view], settings.max_new_tokens, stop=STOP, answer_prefix=answer_prefix,
            constrain_to=[u.text for u in units] if constrained else None, separators=SEPARATORS if constrained else (),
        ))
        plan.append((name, ("few-shot",)))
    answers = iter((yield requests) if requests else [])
    for name, how in plan:
        if how[0] == "spans":
            for unit, predicted, spans in zip(units, next(answers), found):
                _add_predicted(docs[unit.doc_index], unit, name, predicted, spans)
            continue
        if how[0] == "fine-tuned":
            _, asked, jobs, todo, asked_before = how
            if asked:
                _finetune_items(units, name, jobs, todo, next(answers))
            for unit, spans, again in zip(units, found, asked_before):
                items = unit.finetune_items.get(name, [])
                # answers seen before were counted in ``unaligned`` when they came
                _align(
                    docs[unit.doc_index], unit, name, [m for _, m in items], spans,
                    record_unaligned=not again, labels=[label for label, _ in items],
                )
            continue
        for unit, answer, spans in zip(units, next(answers), found):
            logger.debug("extract (%s) %r --> %r", name, unit.text[:60], answer)
            parsed = parse_answer(answer, answer_prefix)  # the "]" cut by the stop string is put back there
            _align(docs[unit.doc_index], unit, name, parsed.items, spans)
            unit.unaligned.extend((name, item) for item in parsed.dropped)  # left out, never silently
    return found


def extract_spans(
    docs: List[Doc],
    units: List[Unit],
    members: Mapping[str, Model],
    settings: Settings,
    with_demos: bool = True,
    answer_prefix: str = ANSWER_PREFIX,
) -> List[Dict[Tuple[int, int], Set[str]]]:
    """``extract_spans_steps`` with ``members``' models answering."""
    return run_with(members, extract_spans_steps(docs, units, list(members), settings, with_demos, answer_prefix))


def _add_predicted(
    doc: Doc, unit: Unit, name: str, predicted: List[Tuple[int, int, str, float]], spans: Dict[Tuple[int, int], Set[str]]
) -> None:
    """Add a spaCy member's spans (character offsets in the unit) to ``spans``, snapped to the Doc's
    tokens, with their labels and probabilities in ``unit.extracted_as`` / ``unit.predicted``; a span
    that is no token span of the unit goes to ``unit.unaligned``."""
    for start, end, label, p in predicted:
        tokens = snap(doc, unit.offset + start, unit.offset + end) if 0 <= start < end <= len(unit.text) else None
        if tokens is None:
            unit.unaligned.append((name, clean_text(unit.text[max(0, start):max(0, end)])))
            continue
        span = doc[tokens[0] : tokens[1]]
        key = (span.start_char - unit.offset, span.end_char - unit.offset)
        spans.setdefault(key, set()).add(name)
        unit.extracted_as.setdefault(key, {}).setdefault(name, set()).add(label)
        probs = unit.predicted.setdefault(key, {}).setdefault(name, {})
        probs[label] = max(p, probs.get(label, 0.0))


def _align(
    doc: Doc, unit: Unit, name: str, items: List[str], spans: Dict[Tuple[int, int], Set[str]],
    record_unaligned: bool = True, labels: Optional[List[str]] = None,
) -> None:
    """Add every token-aligned occurrence of each answer string to ``spans`` (found by ``name``);
    strings that match no token span go to ``unit.unaligned`` (logged at DEBUG) unless
    ``record_unaligned`` is off (answers reused from ``unit.finetune_items``, counted before).
    With ``labels`` (one per item: the label it was asked for), ``unit.extracted_as`` records them."""
    for n, item in enumerate(items):
        aligned = False
        for start, end in find_occurrences(unit.text, item):
            tokens = snap(doc, unit.offset + start, unit.offset + end)
            if tokens is None:
                continue
            span = doc[tokens[0] : tokens[1]]
            key = (span.start_char - unit.offset, span.end_char - unit.offset)
            if key[0] < 0 or key[1] > len(unit.text):
                continue
            spans.setdefault(key, set()).add(name)
            if labels is not None:
                unit.extracted_as.setdefault(key, {}).setdefault(name, set()).add(labels[n])
            aligned = True
        if not aligned and record_unaligned:
            unit.unaligned.append((name, clean_text(item)))
            logger.debug("%s: answer %r is not a token span of %r", name, item, unit.text[:80])


def extract_steps(docs: List[Doc], units: List[Unit], members: Sequence[str], settings: Settings) -> Step[int]:
    """Few-shot extraction by every member; adds the union to ``unit.candidates`` (or, with an
    ``accept.extraction_quorum`` or ``accept.finder_sets``, the spans whose finders pass them:
    ``Settings.accepts``).
    RETURNS (int): How many spans were found but left out by those rules (logged at DEBUG).
    """
    below = 0
    found = yield from extract_spans_steps(docs, units, members, settings, with_demos=True)
    for unit, spans in zip(units, found):
        for (start, end), names in sorted(spans.items()):
            if not settings.accepts(names):
                below += 1
                logger.debug("left out (quorum / finder sets): %r found by %s", unit.text[start:end], sorted(names))
                continue
            for name in sorted(names):
                unit.add_candidate(start, end, name)
    return below


def extract(docs: List[Doc], units: List[Unit], members: Mapping[str, Model], settings: Settings) -> int:
    """``extract_steps`` with ``members``' models answering."""
    return run_with(members, extract_steps(docs, units, list(members), settings))
