"""Training records for CLLMFS fine-tuning, from labelled spaCy Docs.

For each Doc and each entity type of the label set there is one record: the fine-tuning prompt
(``finetune.v1.jinja``) followed by the answer (the type's mentions as ``<<< mention >>>`` lines,
``<<< >>>`` when the Doc has none; such empty examples are kept). A record carries the token ids,
a label mask (only the answer and its end-of-turn token count for the LM loss) and the token
ranges, in the full sequence, of every entity span of the text in the prompt (all types, with
their type id) plus a few non-entity spans of the same text (type id ``NON_ENTITY``) for the
contrastive loss.
"""
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc

from ..errors import Errors
from ..store import DemoStore
from .format import (
    add_special_tokens,
    build_messages,
    descriptions_for,
    format_answer,
    format_prompt,
    text_offset,
)

logger = logging.getLogger("spacy_el4ner")

NON_ENTITY = -1
IGNORE_INDEX = -100
DocSource = Union[Sequence[Doc], DemoStore, str, Path]


@dataclass
class Record:
    """One training example: a (text, entity type) prompt and its answer.

    input_ids (List[int]): Prompt and answer token ids.
    labels (List[int]): ``input_ids`` on the answer tokens, ``IGNORE_INDEX`` elsewhere.
    spans (List[Tuple[int, int]]): Token ranges [start, end) in ``input_ids`` of the text's spans.
    span_types (List[int]): Type id per span (index in the label set; ``NON_ENTITY`` for negatives).
    span_keys (List[int]): Id of the mention per span, the same in every record of the Doc.
    span_texts (List[str]): The spans' text (for inspection).
    label (str): The entity type the prompt asks for.
    answer (str): The target answer.
    doc_index (int): Index of the Doc in the input.
    prompt_length (int): Number of prompt tokens (the answer starts there).
    """

    input_ids: List[int]
    labels: List[int]
    spans: List[Tuple[int, int]]
    span_types: List[int]
    span_keys: List[int]
    span_texts: List[str]
    label: str
    answer: str
    doc_index: int
    prompt_length: int
    messages: List[Dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


def load_docs(source: DocSource) -> Tuple[List[Doc], List[str]]:
    """Labelled Docs from a list of Docs, a DemoStore, a store folder or a data file.

    source: Docs, a ``DemoStore``, a store folder (docs.spacy + meta.json) or a file/folder that
        ``spacy_el4ner.readers.read_docs`` reads (.spacy, JSONL, token/BIO).
    RETURNS (Tuple[List[Doc], List[str]]): The Docs and the labels the source declares (the
        store's labels; empty otherwise).
    """
    if isinstance(source, DemoStore):
        return list(source.docs), list(source.labels)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir() and (path / "docs.spacy").exists() and (path / "meta.json").exists():
            store = DemoStore().from_disk(path)
            return list(store.docs), list(store.labels)
        import spacy

        from ..readers import read_docs

        return read_docs(path, spacy.blank("en")), []
    return list(source), []


def labels_of(docs: Iterable[Doc]) -> List[str]:
    """RETURNS (List[str]): The entity labels in the Docs, sorted."""
    return sorted({ent.label_ for doc in docs for ent in doc.ents})


def char_to_token_range(offsets: Sequence[Tuple[int, int]], start: int, end: int) -> Optional[Tuple[int, int]]:
    """Tokens covering the characters [start, end) of the encoded string.

    offsets: The fast tokenizer's offset mapping (one (start, end) per token).
    RETURNS (Optional[Tuple[int, int]]): The token range [first, last + 1), or None when no token
        overlaps the characters.
    """
    first = last = None
    for i, (s, e) in enumerate(offsets):
        if e <= s:  # special tokens and other zero-width tokens
            continue
        if e > start and s < end:
            if first is None:
                first = i
            last = i
        elif s >= end:
            break
    if first is None or last is None:
        return None
    return first, last + 1


def negative_spans(doc: Doc, n: int, rng: random.Random, max_len: int = 3) -> List[Tuple[int, int]]:
    """Character offsets of up to ``n`` random windows of 1 to ``max_len`` spaCy tokens that do
    not overlap an entity and contain a letter or digit."""
    in_ent = [False] * len(doc)
    for ent in doc.ents:
        for i in range(ent.start, ent.end):
            in_ent[i] = True
    windows = []
    for size in range(1, max_len + 1):
        for start in range(0, len(doc) - size + 1):
            if any(in_ent[start : start + size]):
                continue
            span = doc[start : start + size]
            if not any(ch.isalnum() for ch in span.text):
                continue
            windows.append((span.start_char, span.end_char))
    rng.shuffle(windows)
    chosen: List[Tuple[int, int]] = []
    for s, e in windows:
        if len(chosen) >= n:
            break
        if all(e <= cs or s >= ce for cs, ce in chosen):
            chosen.append((s, e))
    return sorted(chosen)


def build_records(
    docs: Sequence[Doc],
    tokenizer: Any,
    labels: Sequence[str],
    *,
    descriptions: Optional[Dict[str, str]] = None,
    negatives: int = 3,
    max_length: int = 1024,
    include_empty: bool = True,
    seed: int = 0,
    template_dir: str = "",
    empty_ratio: Optional[float] = None,
) -> List[Record]:
    """Build the training records.

    docs (Sequence[Doc]): Labelled Docs (``doc.ents``); entities of other labels are ignored.
    tokenizer: A fast (offset-mapping) transformers tokenizer, normally with a chat template.
    labels (Sequence[str]): The label set; one record per Doc and label.
    descriptions (Optional[Dict[str, str]]): Optional label descriptions for the prompt.
    negatives (int): Non-entity spans per Doc for the contrastive loss.
    max_length (int): Records longer than this many tokens are skipped (with a warning).
    include_empty (bool): Keep the records whose answer is empty (``<<< >>>``).
    seed (int): Seed for the choice of non-entity spans (and of the empty records kept).
    template_dir (str): Optional folder of user templates.
    empty_ratio (Optional[float]): Keep at most this many empty-answer records per record with
        a mention (a seeded sample; None: all). On sparse data most (text, type) pairs have no
        mention, and training on all of them teaches the model to answer empty.
    RETURNS (List[Record]): The records, Doc by Doc, in label order.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(Errors.E501)
    if not labels:
        raise ValueError(Errors.E502)
    label_ids = {label: i for i, label in enumerate(labels)}
    descs = descriptions_for(labels, descriptions)
    rng = random.Random(seed)
    special = add_special_tokens(tokenizer)
    end_ids = set(tokenizer.all_special_ids)
    records: List[Record] = []
    skipped_long = 0
    key_base = 0
    for doc_index, doc in enumerate(docs):
        text = doc.text
        if not text.strip():
            continue
        ents = [e for e in doc.ents if e.label_ in label_ids]
        unknown = sorted({e.label_ for e in doc.ents if e.label_ not in label_ids})
        if unknown:
            logger.debug("Doc %d: ignoring entities of labels %s", doc_index, unknown)
        text_end = len(text.rstrip())
        char_spans: List[Tuple[int, int, int]] = [(e.start_char, e.end_char, label_ids[e.label_]) for e in ents]
        char_spans += [(s, e, NON_ENTITY) for s, e in negative_spans(doc, negatives, rng) if e <= text_end]
        for label in labels:
            mentions = [e.text for e in ents if e.label_ == label]
            if not mentions and not include_empty:
                continue
            messages = build_messages(text, label, descs[label], template_dir)
            answer = format_answer(mentions)
            prompt = format_prompt(tokenizer, messages)
            enc = tokenizer(prompt, add_special_tokens=special, return_offsets_mapping=True)
            prompt_ids: List[int] = list(enc["input_ids"])
            offsets = [tuple(o) for o in enc["offset_mapping"]]
            answer_ids = _answer_ids(tokenizer, messages, prompt, answer, end_ids)
            if len(prompt_ids) + len(answer_ids) > max_length:
                skipped_long += 1
                continue
            base = text_offset(prompt, messages, text)
            spans: List[Tuple[int, int]] = []
            types: List[int] = []
            keys: List[int] = []
            texts: List[str] = []
            for k, (s, e, type_id) in enumerate(char_spans):
                rng_tok = char_to_token_range(offsets, base + s, base + e)
                if rng_tok is None:
                    continue
                spans.append(rng_tok)
                types.append(type_id)
                keys.append(key_base + k)
                texts.append(text[s:e])
            records.append(
                Record(
                    input_ids=prompt_ids + answer_ids,
                    labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids,
                    spans=spans,
                    span_types=types,
                    span_keys=keys,
                    span_texts=texts,
                    label=label,
                    answer=answer,
                    doc_index=doc_index,
                    prompt_length=len(prompt_ids),
                    messages=messages,
                )
            )
        key_base += len(char_spans)
    if skipped_long:
        logger.warning("Skipped %d record(s) longer than max_length=%d tokens", skipped_long, max_length)
    logger.info("Built %d fine-tuning records from %d docs and %d labels", len(records), len(docs), len(labels))
    if empty_ratio is not None and include_empty:
        empty_answer = format_answer([])
        empty = [i for i, r in enumerate(records) if r.answer == empty_answer]
        keep = min(len(empty), int(math.ceil(empty_ratio * (len(records) - len(empty)))))
        if keep < len(empty):
            dropped = set(empty) - set(random.Random(seed).sample(empty, keep))
            records = [r for i, r in enumerate(records) if i not in dropped]
            logger.info("Kept %d of %d empty-answer records (empty_ratio=%g)", keep, len(empty), empty_ratio)
    return records


def _answer_ids(tokenizer: Any, messages: List[Dict[str, str]], prompt: str, answer: str, end_ids: set) -> List[int]:
    """Token ids of the answer and the end of the assistant turn (up to and including its first
    special token, e.g. ``<|im_end|>``), tokenized apart from the prompt so that the prompt's
    tokens are exactly those seen at inference."""
    tail = ""
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
        if full.startswith(prompt) and answer in full[len(prompt) :]:
            tail = full[len(prompt) :]
    if not tail:
        tail = answer
    ids: List[int] = list(tokenizer(tail, add_special_tokens=False)["input_ids"])
    for i, tid in enumerate(ids):
        if tid in end_ids:
            return ids[: i + 1]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids
