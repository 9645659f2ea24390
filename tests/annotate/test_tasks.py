"""Tasks: Prodigy's fields from an annotated Doc, stable hashes, uncertainty order, answers
checked against the text, and answers back to labelled Docs."""
import json

import pytest
import spacy
from spacy.tokens import SpanGroup

from spacy_el4ner.annotate.colors import label_colors
from spacy_el4ner.annotate.tasks import (
    BadAnswer, clean_spans, confidence, doc_from_example, input_hash, order_by_uncertainty, task_from_doc, task_hash,
)

LABELS = ["person", "location", "corporation"]


def _annotated(nlp, text, cands):
    """A Doc as the component leaves it: candidates (surface, label, score, accepted, votes) in
    doc.spans["el4ner"] with scores and details, the accepted ones in doc.ents."""
    doc = nlp.make_doc(text)
    spans, scores, details, ents = [], [], [], []
    for surface, label, score, accepted, votes in cands:
        start = text.index(surface)
        span = doc.char_span(start, start + len(surface), label=label)
        spans.append(span)
        scores.append(score)
        details.append({"text": surface, "label": label, "accepted": accepted, "votes": votes, "extracted_by": sorted(votes)})
        if accepted:
            ents.append(span)
    group = SpanGroup(doc, name="el4ner", spans=spans)
    group.attrs["scores"] = scores
    group.attrs["details"] = details
    doc.spans["el4ner"] = group
    doc.ents = ents
    return doc


def test_task_fields_match_prodigy_ner_manual(nlp):
    doc = _annotated(nlp, "Tim Cook visited Berlin today.", [
        ("Tim Cook", "person", 0.91, True, {"a": "person", "b": "person"}),
        ("Berlin", "location", 0.62, True, {"a": "location", "b": "corporation"}),
        ("today", "location", 0.12, False, {"a": "location"}),
    ])
    task = task_from_doc(doc, "el4ner", {"source": "x.txt", "line": 3})
    assert task["text"] == "Tim Cook visited Berlin today."
    assert task["tokens"][:2] == [
        {"text": "Tim", "start": 0, "end": 3, "id": 0, "ws": True}, {"text": "Cook", "start": 4, "end": 8, "id": 1, "ws": True},
    ]
    assert task["tokens"][-2:] == [
        {"text": "today", "start": 24, "end": 29, "id": 4, "ws": False}, {"text": ".", "start": 29, "end": 30, "id": 5, "ws": False},
    ]
    assert task["spans"] == [
        {"start": 0, "end": 8, "token_start": 0, "token_end": 1, "label": "person", "score": 0.91},
        {"start": 17, "end": 23, "token_start": 3, "token_end": 3, "label": "location", "score": 0.62},
    ]
    meta = task["meta"]
    assert meta["source"] == "x.txt" and meta["line"] == 3
    assert [c["votes"] for c in meta["candidates"]] == [
        {"a": "person", "b": "person"}, {"a": "location", "b": "corporation"}, {"a": "location"},
    ]
    assert [c["accepted"] for c in meta["candidates"]] == [True, True, False]
    assert meta["confidence"] == 0.62  # the least sure decision: max(0.62, 0.38)
    assert task["_input_hash"] == input_hash(doc.text)
    assert task["_task_hash"] == task_hash(task["_input_hash"], task["spans"])
    assert json.loads(json.dumps(task)) == task  # plain JSON


def test_hashes_are_stable_ints_and_tell_inputs_and_spans_apart():
    h = input_hash("Tim Cook visited Berlin.")
    assert h == input_hash("Tim Cook visited Berlin.") and isinstance(h, int) and -2**31 <= h < 2**31
    assert h != input_hash("Tim Cook visited Berlin")
    a = task_hash(h, [{"start": 0, "end": 8, "label": "person"}])
    assert a == task_hash(h, [{"start": 0, "end": 8, "label": "person", "score": 0.3}])
    assert a != task_hash(h, [{"start": 0, "end": 8, "label": "corporation"}])
    assert a != task_hash(h, [])


def test_uncertainty_order_puts_the_least_sure_sentence_first(nlp):
    sure = task_from_doc(_annotated(nlp, "Paris is big.", [("Paris", "location", 0.97, True, {})]))
    unsure = task_from_doc(_annotated(nlp, "Apple is big.", [("Apple", "corporation", 0.55, True, {})]))
    nothing = task_from_doc(_annotated(nlp, "It is big.", []))
    rejected = task_from_doc(_annotated(nlp, "Bob is big.", [("Bob", "person", 0.2, False, {})]))
    assert confidence([]) == 1.0 and confidence([0.2]) == 0.8
    assert [t["text"] for t in order_by_uncertainty([sure, nothing, rejected, unsure])] == [
        "Apple is big.", "Bob is big.", "Paris is big.", "It is big.",
    ]


@pytest.mark.parametrize("spans, needle", [
    ([{"start": 0, "end": 8, "label": "PERSON"}], "Unknown label 'PERSON'"),
    ([{"start": 0, "end": 99, "label": "person"}], "outside the text"),
    ([{"start": -1, "end": 3, "label": "person"}], "outside the text"),
    ([{"start": 5, "end": 5, "label": "person"}], "outside the text"),
    ([{"start": 1, "end": 8, "label": "person"}], "token boundaries"),
    ([{"start": 0, "end": 7, "label": "person"}], "token boundaries"),
    ([{"start": "0", "end": 8, "label": "person"}], "must be integers"),
    ([{"start": True, "end": 8, "label": "person"}], "must be integers"),
    ([{"start": 0, "end": 8, "label": "person"}, {"start": 4, "end": 16, "label": "location"}], "overlap"),
    (["Tim"], "spans must be a list"),
    ({"start": 0}, "spans must be a list"),
    ([{"start": 0, "end": 3, "label": "person"}] * 50, "spans must be a list"),
])
def test_answers_that_do_not_fit_the_text_are_refused(nlp, spans, needle):
    task = task_from_doc(_annotated(nlp, "Tim Cook visited Berlin.", []))
    with pytest.raises(BadAnswer, match=needle):
        clean_spans(task, spans, LABELS)


def test_answer_back_to_a_labelled_doc(nlp):
    text = "Tim  Cook visited Berlin.\nBye"  # a double space and a newline: spaCy whitespace tokens
    task = task_from_doc(_annotated(nlp, text, []))
    spans = clean_spans(task, [{"start": 18, "end": 24, "label": "location"}, {"start": 0, "end": 9, "label": "person"}], LABELS)
    assert [(s["token_start"], s["token_end"]) for s in spans] == [(0, 2), (4, 4)]
    doc = doc_from_example(spacy.blank("en").vocab, {**task, "spans": spans})
    assert doc.text == text
    assert [(e.text, e.label_) for e in doc.ents] == [("Tim  Cook", "person"), ("Berlin", "location")]


@pytest.mark.slow
def test_real_pipeline_task(small_nlp):
    """On a real suggestion: every accepted candidate is a span with its score, every candidate
    carries the member's vote, and the spans sit on the Doc's tokens."""
    doc = small_nlp("Elon Musk said Tesla will open a factory near Austin.")
    task = task_from_doc(doc)
    group = doc.spans["el4ner"]
    assert len(task["meta"]["candidates"]) == len(group) > 0
    assert [(s["start"], s["end"], s["label"]) for s in task["spans"]] == [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    assert all(0.0 < s["score"] <= 1.0 for s in task["spans"])
    assert all(set(c["votes"]) <= {"smollm2-135m-instruct"} for c in task["meta"]["candidates"])
    assert clean_spans(task, task["spans"], LABELS) == [{k: v for k, v in s.items() if k != "score"} for s in task["spans"]]


def test_label_colors_are_displacys():
    colors = label_colors(["PERSON", "location", "corporation", "thing", "other"])
    assert colors["PERSON"] == "#aa9cfc" and colors["location"] == "#ff9561" and colors["corporation"] == "#7aecec"
    assert len(set(colors.values())) == 5
