
from spacy_el4ner.align import find_occurrences, select_entities, snap


# -- find_occurrences --------------------------------------------------------------------------
def test_exact_occurrence():
    text = "Apple hired Tim Cook."
    assert find_occurrences(text, "Tim Cook") == [(12, 20)]
    assert text[12:20] == "Tim Cook"


def test_every_occurrence_in_order():
    text = "Paris, then Paris again, and Paris."
    found = find_occurrences(text, "Paris")
    assert found == [(0, 5), (12, 17), (29, 34)]
    assert all(text[a:b] == "Paris" for a, b in found)


def test_needle_is_stripped_and_empty_needle_finds_nothing():
    assert find_occurrences("Paris is big", "  Paris ") == [(0, 5)]
    assert find_occurrences("Paris is big", "   ") == []
    assert find_occurrences("", "Paris") == []


def test_exact_match_preferred_over_case_insensitive():
    text = "apple pie from Apple"
    assert find_occurrences(text, "Apple") == [(15, 20)]


def test_case_insensitive_fallback():
    text = "We met at NEW YORK yesterday."
    assert find_occurrences(text, "New York") == [(10, 18)]


def test_whitespace_insensitive_fallback():
    text = "He lives in New\n  York City."
    (start, end), = find_occurrences(text, "new york city")
    assert text[start:end] == "New\n  York City"


def test_edge_punctuation_is_stripped_when_needed():
    text = "She flew to Paris yesterday."
    assert find_occurrences(text, '"Paris,"') == [(12, 17)]
    assert find_occurrences(text, "\u201cParis\u201d") == [(12, 17)]


def test_edge_punctuation_kept_when_it_matches():
    text = "He works for the U.S. government."
    assert find_occurrences(text, "U.S.") == [(17, 21)]


def test_no_occurrence():
    assert find_occurrences("Apple hired Tim Cook.", "Berlin") == []


# -- snap --------------------------------------------------------------------------------------
def test_snap_exact_token_span(nlp):
    doc = nlp("Apple hired Tim Cook.")
    assert snap(doc, 12, 20) == (2, 4)
    assert doc[2:4].text == "Tim Cook"


def test_cook_inside_cooking_is_not_aligned(nlp):
    doc = nlp("Cooking with Tim is fun.")
    start, end = find_occurrences(doc.text, "Cook")[0]
    assert (start, end) == (0, 4)
    assert snap(doc, start, end) is None


def test_snap_expands_by_at_most_two_chars(nlp):
    doc = nlp("He works for the U.S. government.")
    assert doc[4].text == "U.S."  # one token in the English tokenizer
    start = doc.text.index("U.S")
    # "U.S" -> "U.S." grows by one character: allowed
    assert snap(doc, start, start + 3) == (4, 5)
    # "U." -> "U.S." grows by two characters: still allowed
    assert snap(doc, start, start + 2) == (4, 5)
    # "U" -> "U.S." would grow by three: refused
    assert snap(doc, start, start + 1) is None


def test_snap_whitespace_only_span_is_none(nlp):
    doc = nlp("Apple  hired")
    assert snap(doc, 5, 7) is None


# -- select_entities ---------------------------------------------------------------------------
def test_select_by_confidence_first(nlp):
    doc = nlp("New York City is big")
    ents = select_entities(doc, [(0, 2, "LOC", 0.5), (1, 3, "ORG", 0.9)])
    assert [(e.start, e.end, e.label_) for e in ents] == [(1, 3, "ORG")]


def test_select_by_length_on_equal_confidence(nlp):
    doc = nlp("New York City is big")
    ents = select_entities(doc, [(0, 2, "LOC", 0.7), (0, 3, "GPE", 0.7)])
    assert [(e.start, e.end, e.label_) for e in ents] == [(0, 3, "GPE")]


def test_select_by_position_on_equal_confidence_and_length(nlp):
    doc = nlp("New York City is big")
    ents = select_entities(doc, [(1, 3, "B", 0.7), (0, 2, "A", 0.7)])
    assert [(e.start, e.end, e.label_) for e in ents] == [(0, 2, "A")]


def test_select_result_is_sorted_and_non_overlapping(nlp):
    doc = nlp("Tim Cook met Angela Merkel in Berlin")
    scored = [(6, 7, "LOC", 0.6), (0, 2, "PER", 0.9), (3, 5, "PER", 0.8), (4, 6, "X", 0.1), (0, 0, "BAD", 1.0)]
    ents = select_entities(doc, scored)
    assert [(e.start, e.end, e.label_) for e in ents] == [(0, 2, "PER"), (3, 5, "PER"), (6, 7, "LOC")]
    doc.ents = ents  # spaCy itself refuses overlapping ents


def test_existing_non_conflicting_ents_are_kept(nlp):
    doc = nlp("Tim Cook met Angela Merkel in Berlin")
    from spacy.tokens import Span

    doc.ents = [Span(doc, 0, 1, label="OLD"), Span(doc, 6, 7, label="GPE")]
    ents = select_entities(doc, [(0, 2, "PER", 0.9)])
    # the old (0, 1) overlaps the new (0, 2) and is dropped; (6, 7) is kept
    assert [(e.start, e.end, e.label_) for e in ents] == [(0, 2, "PER"), (6, 7, "GPE")]
    assert [(e.start, e.end) for e in select_entities(doc, [(0, 2, "PER", 0.9)], keep_existing=False)] == [(0, 2)]


def test_non_overlapping_on_character_offsets():
    from spacy_el4ner.align import non_overlapping

    items = [(0, 8, "PER", 0.6), (4, 12, "ORG", 0.9), (13, 19, "LOC", 0.6), (20, 20, "LOC", 1.0)]
    assert non_overlapping(items) == [(4, 12, "ORG", 0.9), (13, 19, "LOC", 0.6)]  # empty span skipped
