"""Inference with the fine-tuning prompt: greedy (optionally constrained) generation, parsing of
the ``<<< mention >>>`` answers into character spans, and span-level P/R/F1 on labelled Docs."""
import logging
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ..errors import Errors
from ..models.hf import greedy_inputs
from .format import (
    SEPARATORS,
    add_special_tokens,
    build_messages,
    descriptions_for,
    find_char_spans,
    format_prompt,
    parse_answer,
)

logger = logging.getLogger("spacy_el4ner")

CharSpan = Tuple[int, int, str]


def end_token_ids(model: Any, tokenizer: Any) -> List[int]:
    """RETURNS (List[int]): The ids that end an answer: the generation config's EOS ids and the
    tokenizer's EOS."""
    ids: List[int] = []
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.append(config_eos)
    elif config_eos:
        ids.extend(int(i) for i in config_eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    constrain_to: Optional[Sequence[str]] = None,
    separators: Sequence[str] = SEPARATORS,
) -> List[str]:
    """Greedy-decode one answer per rendered prompt string (left-padded batches).

    model: A transformers causal LM (or a peft model around one).
    tokenizer: Its tokenizer.
    prompts (Sequence[str]): Prompt strings (``format_prompt``).
    max_new_tokens (int): The most tokens per answer.
    batch_size (int): Prompts per batch.
    constrain_to (Optional[Sequence[str]]): One input text per prompt: decode under
        ``substring_processor`` (only separators and copies of the text).
    separators (Sequence[str]): The separators for constrained decoding.
    RETURNS (List[str]): The answers, cut at the first end token.
    """
    import torch
    from transformers import LogitsProcessorList

    if constrain_to is not None and len(constrain_to) != len(prompts):
        raise ValueError(Errors.E110.format(n_texts=len(constrain_to), n_prompts=len(prompts)))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ends = end_token_ids(model, tokenizer)
    special = add_special_tokens(tokenizer)
    encoded = [tokenizer(p, add_special_tokens=special)["input_ids"] for p in prompts]
    answers: List[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in batch)
        kwargs = greedy_inputs([encoded[i] for i in batch], pad, device, max_new_tokens)
        kwargs["eos_token_id"] = ends or None
        if constrain_to is not None:
            from ..models.constrained import substring_processor

            proc = substring_processor(
                tokenizer, [constrain_to[i] for i in batch], separators, eos_token_id=ends or None, prompt_length=width
            )
            kwargs["logits_processor"] = LogitsProcessorList([proc])
        with torch.no_grad():
            out = model.generate(**kwargs)
        for i, row in zip(batch, out[:, width:].tolist()):
            for cut, tid in enumerate(row):
                if tid in ends:
                    row = row[:cut]
                    break
            answers[i] = tokenizer.decode(row, skip_special_tokens=True)
    return answers


def extract(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    descriptions: Optional[Dict[str, str]] = None,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    constrained: bool = False,
    template_dir: str = "",
) -> List[List[CharSpan]]:
    """Entities of every label in every text, with one fine-tuning prompt per (text, label).

    RETURNS (List[List[Tuple[int, int, str]]]): Per text, the (start, end, label) character spans
        found (overlaps between labels are not resolved here; see ``to_doc_spans``).
    """
    descs = descriptions_for(labels, descriptions)
    jobs = [(i, label) for i, text in enumerate(texts) if text.strip() for label in labels]
    prompts = [format_prompt(tokenizer, build_messages(texts[i], label, descs[label], template_dir)) for i, label in jobs]
    answers = generate_answers(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        constrain_to=[texts[i] for i, _ in jobs] if constrained else None,
    )
    out: List[List[CharSpan]] = [[] for _ in texts]
    for (i, label), answer in zip(jobs, answers):
        for start, end in find_char_spans(texts[i], parse_answer(answer)):
            out[i].append((start, end, label))
    return out


def extract_with_model(
    model: Any,
    docs: Sequence[Doc],
    labels: Sequence[str],
    *,
    descriptions: Optional[Dict[str, str]] = None,
    max_new_tokens: int = 48,
) -> List[List[CharSpan]]:
    """The same as ``extract`` through a ``spacy_el4ner`` Model (e.g. ``HFModel`` with
    ``adapter=``), unconstrained: its ``generate`` renders the messages with the chat template.

    RETURNS (List[List[Tuple[int, int, str]]]): Per Doc, the (start, end, label) character spans.
    """
    descs = descriptions_for(labels, descriptions)
    jobs = [(i, label) for i, doc in enumerate(docs) if doc.text.strip() for label in labels]
    prompts = [build_messages(docs[i].text, label, descs[label]) for i, label in jobs]
    answers = model.generate(prompts, max_new_tokens=max_new_tokens)
    out: List[List[CharSpan]] = [[] for _ in docs]
    for (i, label), answer in zip(jobs, answers):
        for start, end in find_char_spans(docs[i].text, parse_answer(answer)):
            out[i].append((start, end, label))
    return out


def to_doc_spans(doc: Doc, spans: Sequence[CharSpan]) -> List[Span]:
    """Character spans -> non-overlapping spaCy spans (snapped outwards to token boundaries;
    overlaps resolved by ``spacy.util.filter_spans``: longest first)."""
    out: List[Span] = []
    for start, end, label in spans:
        span = doc.char_span(start, end, label=label, alignment_mode="expand")
        if span is not None and len(span):
            out.append(span)
    return filter_spans(out)


def prf(gold: Set[Tuple[Any, ...]], pred: Set[Tuple[Any, ...]]) -> Dict[str, float]:
    """RETURNS (Dict[str, float]): Micro precision, recall and F1 of predicted vs gold items."""
    tp = len(gold & pred)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gold) if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "n_gold": float(len(gold)), "n_pred": float(len(pred))}


def evaluate(
    model: Any,
    tokenizer: Any,
    docs: Sequence[Doc],
    labels: Sequence[str],
    *,
    descriptions: Optional[Dict[str, str]] = None,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    constrained: bool = False,
    limit: Optional[int] = None,
) -> Dict[str, float]:
    """Span-level micro P/R/F1 (exact character offsets and label) of greedy generation with the
    fine-tuning prompt on labelled Docs.

    limit (Optional[int]): Use only the first N Docs (evaluation costs one generation per Doc
        and label).
    """
    docs = list(docs[:limit] if limit else docs)
    texts = [d.text for d in docs]
    predicted = extract(
        model,
        tokenizer,
        texts,
        labels,
        descriptions=descriptions,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        constrained=constrained,
    )
    known = set(labels)
    gold = {(i, e.start_char, e.end_char, e.label_) for i, d in enumerate(docs) for e in d.ents if e.label_ in known}
    pred = {(i, s, e, label) for i, spans in enumerate(predicted) for s, e, label in spans}
    return prf(gold, pred)
