"""Training records from labelled Docs, on the tiny tokenizer (with a chat template)."""
import pytest
from spacy.tokens import DocBin

from spacy_el4ner.finetune.data import (
    IGNORE_INDEX,
    NON_ENTITY,
    build_records,
    char_to_token_range,
    labels_of,
    load_docs,
    negative_spans,
)
from spacy_el4ner.finetune.format import (
    EMPTY_ANSWER,
    build_messages,
    find_char_spans,
    format_answer,
    format_prompt,
    parse_answer,
)
from spacy_el4ner.store import DemoStore

LABELS = ["PER", "ORG", "LOC"]


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_path)


@pytest.fixture
def records(labelled_docs, tokenizer):
    return build_records(labelled_docs, tokenizer, LABELS, negatives=2, seed=1)


def test_answer_format_round_trip():
    assert format_answer([]) == EMPTY_ANSWER == "<<< >>>"
    answer = format_answer(["Paris", "New York"])
    assert answer == "<<< Paris >>>\n<<< New York >>>"
    assert parse_answer(answer) == ["Paris", "New York"]
    assert parse_answer(EMPTY_ANSWER) == []
    assert parse_answer("junk <<< a >>><<<b>>> <<< >>> <<< c") == ["a", "b"]
    text = "Paris and Paris and Rome"
    assert find_char_spans(text, ["Paris", "Paris", "Rome", "Oslo"]) == [(0, 5), (10, 15), (20, 24)]


def test_one_prompt_per_doc_and_type(records, labelled_docs):
    assert len(records) == len(labelled_docs) * len(LABELS)
    for i, doc in enumerate(labelled_docs):
        mine = [r for r in records if r.doc_index == i]
        assert [r.label for r in mine] == LABELS
        for r in mine:
            assert r.messages == build_messages(doc.text, r.label)
            user = r.messages[-1]["content"]
            assert f"Entity type: {r.label}" in user and user.endswith(f"Text: {doc.text}")
            assert r.answer == format_answer([e.text for e in doc.ents if e.label_ == r.label])


def test_empty_answers_are_kept(records, labelled_docs, tokenizer):
    empty = [r for r in records if r.answer == EMPTY_ANSWER]
    # "The Nile flows north through Egypt." has no PER and no ORG; doc 2 has no ORG, doc 3 no PER
    assert {(r.doc_index, r.label) for r in empty} == {(1, "ORG"), (2, "PER"), (3, "PER"), (3, "ORG")}
    without = build_records(labelled_docs, tokenizer, LABELS, include_empty=False)
    assert len(without) == len(records) - len(empty)
    assert all(r.answer != EMPTY_ANSWER for r in without)


def test_label_mask_covers_exactly_the_answer(records, tokenizer):
    for r in records:
        assert len(r.labels) == len(r.input_ids)
        masked = [i for i, lab in enumerate(r.labels) if lab != IGNORE_INDEX]
        assert masked == list(range(r.prompt_length, len(r.input_ids)))
        assert [r.labels[i] for i in masked] == r.input_ids[r.prompt_length :]
        # the answer, then the end of the assistant turn (the model must learn to stop)
        assert tokenizer.decode(r.input_ids[r.prompt_length :]) == r.answer + tokenizer.eos_token
        # the prompt tokens are exactly those HFModel sends at inference
        prompt = format_prompt(tokenizer, r.messages)
        assert r.input_ids[: r.prompt_length] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert prompt.endswith("<s>assistant\n")


def test_span_ranges_decode_to_the_spans(records, labelled_docs, tokenizer):
    for r in records:
        doc = labelled_docs[r.doc_index]
        ents = [(e.text, LABELS.index(e.label_)) for e in doc.ents]
        entity_spans = [(t, ty) for t, ty in zip(r.span_texts, r.span_types) if ty != NON_ENTITY]
        assert entity_spans == ents  # every entity of the text, all types, in order
        for (start, end), text in zip(r.spans, r.span_texts):
            assert 0 <= start < end <= r.prompt_length
            assert tokenizer.decode(r.input_ids[start:end]).strip() == text
        negatives = [(s, t) for s, t, ty in zip(r.spans, r.span_texts, r.span_types) if ty == NON_ENTITY]
        assert len(negatives) == 2
        ent_ranges = [s for s, ty in zip(r.spans, r.span_types) if ty != NON_ENTITY]
        for (ns, ne), text in negatives:
            assert 1 <= len(text.split()) <= 3 and text in doc.text
            assert all(ne <= es or ns >= ee for es, ee in ent_ranges)
    # the same mentions (and negatives) in every prompt of a Doc, under the same keys
    by_doc = {}
    for r in records:
        by_doc.setdefault(r.doc_index, []).append((r.span_keys, r.span_texts))
    for seen in by_doc.values():
        assert all(s == seen[0] for s in seen)
    all_keys = [k for r in records if r.label == "PER" for k in r.span_keys]
    assert len(all_keys) == len(set(all_keys))


def test_negative_spans_avoid_entities(labelled_docs):
    import random

    doc = labelled_docs[1]
    spans = negative_spans(doc, 5, random.Random(0))
    assert spans and len(spans) <= 5
    for s, e in spans:
        assert all(e <= ent.start_char or s >= ent.end_char for ent in doc.ents)
        assert any(ch.isalnum() for ch in doc.text[s:e])


def test_char_to_token_range():
    offsets = [(0, 0), (0, 5), (5, 11), (11, 12), (12, 12)]  # a special token, "Hello", " world", "!"
    assert char_to_token_range(offsets, 0, 5) == (1, 2)
    assert char_to_token_range(offsets, 6, 11) == (2, 3)
    assert char_to_token_range(offsets, 3, 12) == (1, 4)
    assert char_to_token_range(offsets, 20, 25) is None


def test_load_docs_from_store_and_files(labelled_docs, tmp_path, nlp):
    store = DemoStore(nlp.vocab, ["PER", "LOC", "ORG"])
    store.add(labelled_docs)
    docs, labels = load_docs(store)
    assert len(docs) == 4 and labels == ["PER", "LOC", "ORG"]
    store.to_disk(tmp_path / "store")
    docs, labels = load_docs(tmp_path / "store")
    assert [d.text for d in docs] == [d.text for d in labelled_docs] and labels == ["PER", "LOC", "ORG"]
    DocBin(docs=labelled_docs).to_disk(tmp_path / "train.spacy")
    docs, labels = load_docs(str(tmp_path / "train.spacy"))
    assert [[(e.text, e.label_) for e in d.ents] for d in docs] == [[(e.text, e.label_) for e in d.ents] for d in labelled_docs]
    assert labels == [] and labels_of(docs) == ["LOC", "ORG", "PER"]
    assert load_docs(labelled_docs) == (labelled_docs, [])


def test_long_records_skipped(labelled_docs, tokenizer, caplog):
    assert build_records(labelled_docs, tokenizer, LABELS, max_length=10) == []
    with pytest.raises(ValueError):
        build_records(labelled_docs, tokenizer, [])


def test_empty_ratio_samples_the_empty_records(labelled_docs, tokenizer):
    empty = format_answer([])
    everything = build_records(labelled_docs, tokenizer, LABELS)
    n_full = sum(r.answer != empty for r in everything)
    n_empty = sum(r.answer == empty for r in everything)
    assert (n_full, n_empty) == (8, 4)
    half = build_records(labelled_docs, tokenizer, LABELS, empty_ratio=0.25, seed=3)
    assert sum(r.answer != empty for r in half) == 8 and sum(r.answer == empty for r in half) == 2
    assert build_records(labelled_docs, tokenizer, LABELS, empty_ratio=0.25, seed=3)[-1].answer == half[-1].answer
    none = build_records(labelled_docs, tokenizer, LABELS, empty_ratio=0.0)
    assert all(r.answer != empty for r in none)
    assert len(build_records(labelled_docs, tokenizer, LABELS, empty_ratio=5.0)) == 12
