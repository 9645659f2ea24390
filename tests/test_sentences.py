import random

import pytest

from spacy_el4ner.sentences import split_units


def long_text(n_words: int, seed: int = 0, punctuate: bool = True) -> str:
    rng = random.Random(seed)
    vocab = ["Paris", "the", "river", "Apple", "hired", "Tim", "Cook", "in", "a", "city", "north", "and"]
    words = []
    for i in range(n_words):
        words.append(rng.choice(vocab))
        if punctuate and rng.random() < 0.07:
            words[-1] += rng.choice([".", "!", "?"])
    return " ".join(words)


def check_units(doc, units, max_tokens):
    covered = []
    for unit in units:
        assert doc.text[unit.offset : unit.offset + len(unit.text)] == unit.text
        span = doc.char_span(unit.offset, unit.offset + len(unit.text))
        assert span is not None, "units start and end on token boundaries"
        assert 0 < len(span) <= max_tokens
        covered.extend(range(span.start, span.end))
    # every token in exactly one unit, in order
    assert covered == list(range(len(doc)))


def test_short_doc_is_one_unit(nlp):
    doc = nlp("Apple hired Tim Cook. He lives in Cupertino.")
    units = split_units(doc, 3, max_tokens=200)
    assert len(units) == 1
    assert units[0].doc_index == 3
    assert units[0].offset == 0
    assert units[0].text == doc.text


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_whitespace_only_gives_no_units(nlp, text):
    assert split_units(nlp(text), 0, max_tokens=200) == []


def test_long_doc_is_cut_at_sentences(nlp):
    doc = nlp(long_text(5000))
    assert len(doc) > 5000
    units = split_units(doc, 0, max_tokens=200)
    assert len(units) >= len(doc) // 200
    check_units(doc, units, 200)
    # cut at sentence ends wherever a sentence fits: all but the last unit end in punctuation
    ends = [u.text[-1] for u in units[:-1]]
    assert sum(e in ".!?" for e in ends) >= 0.9 * len(ends)


def test_long_doc_without_punctuation_is_hard_cut(nlp):
    doc = nlp(long_text(1000, punctuate=False))
    units = split_units(doc, 1, max_tokens=64)
    assert len(units) == -(-len(doc) // 64)
    check_units(doc, units, 64)
    assert all(u.doc_index == 1 for u in units)


def test_uses_existing_sentence_boundaries(nlp):
    nlp.add_pipe("sentencizer")
    doc = nlp("One two three. Four five six. Seven eight nine.")
    units = split_units(doc, 0, max_tokens=8)
    assert [u.text for u in units] == ["One two three. Four five six.", "Seven eight nine."]
    check_units(doc, units, 8)


def test_leading_and_multiple_spaces(nlp):
    text = "  " + long_text(600, seed=3).replace(" the ", "   the ") + "  "
    doc = nlp(text)
    units = split_units(doc, 0, max_tokens=50)
    for unit in units:
        assert doc.text[unit.offset : unit.offset + len(unit.text)] == unit.text
        assert unit.text.strip()


def test_units_are_bounded_in_characters_and_a_huge_token_is_left_out(nlp):
    blob = "x" * 20_000
    doc = nlp(f"Tim Cook visited Berlin. {blob} Angela Merkel met Macron in Paris.")
    skipped = []
    units = split_units(doc, 0, 200, skipped)
    assert all(len(u.text) <= 8 * 200 for u in units)
    assert blob not in "".join(u.text for u in units)
    assert skipped == [(doc.text.index(blob), doc.text.index(blob) + 20_000)]
    assert "Tim Cook" in units[0].text and "Paris" in units[-1].text
    for u in units:
        assert doc.text[u.offset : u.offset + len(u.text)] == u.text
    long_words = nlp(" ".join(["abcdefghijklmnopqrstuvwxyz"] * 100))  # 100 tokens, 2,699 characters
    pieces = split_units(long_words, 0, 200)
    assert len(pieces) == 2 and all(len(u.text) <= 1600 for u in pieces)
    assert " ".join(u.text for u in pieces) == long_words.text
