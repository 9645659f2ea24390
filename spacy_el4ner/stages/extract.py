"""Stage 2: span extraction by every member, few-shot; the union of what they found."""
import logging
from typing import Dict, List, Mapping, Optional, Set, Tuple

from spacy.tokens import Doc

from ..align import find_occurrences, snap
from ..finetune import format as ft_format
from ..models.protocol import Model
from ..parsing import clean_text, parse_answer
from ..prompts import Messages, render
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


def finetune_prompt_items(
    model: Model, units: List[Unit], settings: Settings, constrained: bool, name: str = ""
) -> List[List[Tuple[str, str]]]:
    """Ask a member with the fine-tuning prompt (``finetune.v1.jinja``: one prompt per unit and
    label, no demonstrations, answers as ``<<< mention >>>`` lines), the format its CLLMFS adapter
    was trained on. A *base* model adapted that way answers only in that format.

    The prompts have no demonstrations, so pre-extraction (retrieval) and extraction would ask the
    same: with ``name`` given, the answers are kept in ``unit.finetune_items[name]`` and a unit
    that already has them is not asked again.
    RETURNS (List[List[Tuple[str, str]]]): Per unit, (label, mention) for every label, in order.
    """
    descriptions = ft_format.descriptions_for(settings.labels, settings.descriptions)
    items: List[List[Tuple[str, str]]] = [list(u.finetune_items.get(name, [])) if name else [] for u in units]
    todo = [i for i, unit in enumerate(units) if not (name and name in unit.finetune_items)]
    jobs = [(i, label) for i in todo if units[i].text.strip() for label in settings.labels]
    if jobs:
        prompts = [ft_format.build_messages(units[i].text, label, descriptions[label]) for i, label in jobs]
        kwargs = {"constrain_to": [units[i].text for i, _ in jobs], "separators": ft_format.SEPARATORS} if constrained else {}
        answers = model.generate(prompts, max_new_tokens=settings.max_new_tokens, **kwargs)
        for (i, label), prompt, answer in zip(jobs, prompts, answers):
            logger.debug("fine-tuning prompt:\n%s\n--> %r", prompt, answer)
            items[i].extend((label, mention) for mention in ft_format.parse_answer(answer))
    if name:
        for i in todo:
            units[i].finetune_items[name] = list(items[i])
    return items


def extract_spans(
    docs: List[Doc],
    units: List[Unit],
    members: Mapping[str, Model],
    settings: Settings,
    with_demos: bool = True,
    answer_prefix: str = ANSWER_PREFIX,
) -> List[Dict[Tuple[int, int], Set[str]]]:
    """Ask every member for the entity strings of every unit and align them to tokens.

    Every occurrence of an answer string is a span. Answers that match no token span are kept in
    ``unit.unaligned`` and logged at DEBUG, never dropped silently.
    RETURNS: Per unit, (start char, end char) in the unit -> the members that found it.
    """
    found: List[Dict[Tuple[int, int], Set[str]]] = [dict() for _ in units]
    if not units:
        return found
    by_view: Dict[int, List[Messages]] = {}
    for name, model in members.items():
        if name in settings.finetune_prompt:
            asked_before = [name in u.finetune_items for u in units]
            per_unit = finetune_prompt_items(model, units, settings, settings.constrains(name), name)
            for unit, items, spans, again in zip(units, per_unit, found, asked_before):
                # answers seen before were counted in ``unaligned`` when they came
                _align(
                    docs[unit.doc_index], unit, name, [m for _, m in items], spans,
                    record_unaligned=not again, labels=[label for label, _ in items],
                )
            continue
        view = settings.view_of(name) if with_demos else 0
        if view not in by_view:
            by_view[view] = [extract_prompt(u, settings, with_demos, view) for u in units]
        prompts = by_view[view]
        kwargs = {"constrain_to": [u.text for u in units], "separators": SEPARATORS} if settings.constrains(name) else {}
        answers = model.generate(
            prompts, max_new_tokens=settings.max_new_tokens, stop=STOP, answer_prefix=answer_prefix, **kwargs
        )
        for unit, prompt, answer, spans in zip(units, prompts, answers, found):
            logger.debug("extract prompt (%s):\n%s\n--> %r", name, prompt, answer)
            parsed = parse_answer(answer, answer_prefix)  # the "]" cut by the stop string is put back there
            _align(docs[unit.doc_index], unit, name, parsed.items, spans)
            unit.unaligned.extend((name, item) for item in parsed.dropped)  # left out, never silently
    return found


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


def extract(docs: List[Doc], units: List[Unit], members: Mapping[str, Model], settings: Settings) -> int:
    """Few-shot extraction by every member; adds the union to ``unit.candidates`` (or, with an
    ``extraction_quorum`` or ``accept_finder_sets``, the spans whose finders pass them:
    ``Settings.accepts``).
    RETURNS (int): How many spans were found but left out by those rules (logged at DEBUG).
    """
    below = 0
    for unit, spans in zip(units, extract_spans(docs, units, members, settings, with_demos=True)):
        for (start, end), names in sorted(spans.items()):
            if not settings.accepts(names):
                below += 1
                logger.debug("left out (quorum / finder sets): %r found by %s", unit.text[start:end], sorted(names))
                continue
            for name in sorted(names):
                unit.add_candidate(start, end, name)
    return below
