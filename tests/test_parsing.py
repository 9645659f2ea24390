import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_el4ner.align import _EDGE_PUNCT, find_occurrences
from spacy_el4ner.parsing import parse_answer, parse_list


def test_well_formed_json_list():
    assert parse_list('["Paris", "Tim Cook"]', prefix="") == (["Paris", "Tim Cook"], True)


def test_prefix_is_put_back():
    assert parse_list('"Paris", "London"]') == (["Paris", "London"], True)


def test_empty_list():
    assert parse_list("[]", prefix="") == ([], True)


def test_duplicates_and_blanks_removed_in_order():
    items, ok = parse_list('["B", "A", "B", "  ", " C "]', prefix="")
    assert items == ["B", "A", "C"]
    assert ok


def test_unterminated_list():
    items, ok = parse_list('["Paris", "London"', prefix="")
    assert items == ["Paris", "London"]
    assert ok is False


def test_unterminated_list_inside_a_string():
    items, ok = parse_list('["Paris", "Lond', prefix="")
    assert items == ["Paris", "Lond"]
    assert ok is False


def test_unterminated_list_with_trailing_comma():
    assert parse_list('["Paris", ', prefix="")[0] == ["Paris"]


def test_single_quotes():
    items, ok = parse_list("['Paris', 'Tim Cook']", prefix="")
    assert items == ["Paris", "Tim Cook"]
    assert ok is False


def test_code_fences():
    assert parse_list('```json\n["Paris", "Berlin"]\n```', prefix="")[0] == ["Paris", "Berlin"]
    assert parse_list('```\n["Paris"]\n```\nSome chatter after', prefix="")[0] == ["Paris"]


def test_bulleted_lines():
    assert parse_list("- Paris\n- Tim Cook\n* Berlin\n\u2022 Egypt", prefix="")[0] == ["Paris", "Tim Cook", "Berlin", "Egypt"]


def test_numbered_lines():
    assert parse_list("1. Paris\n2) Tim Cook\n3. Berlin", prefix="")[0] == ["Paris", "Tim Cook", "Berlin"]


def test_text_label_pairs_keep_the_text():
    items, ok = parse_list('[["Paris", "LOC"], ["Tim Cook", "PER"]]', prefix="")
    assert items == ["Paris", "Tim Cook"]
    assert ok


def test_dict_items():
    answer = '[{"text": "Paris", "label": "LOC"}, {"entity": "Tim Cook"}, {"name": "Egypt"}, {"span": "Nile"}, {"x": 1}]'
    assert parse_list(answer, prefix="")[0] == ["Paris", "Tim Cook", "Egypt", "Nile"]


def test_non_string_items_are_dropped():
    assert parse_list('[1, null, true, ["x"], [2, "y"], "Paris"]', prefix="")[0] == ["x", "Paris"]


@pytest.mark.parametrize("answer", ["none", "None", "N/A", "no entities", "", "[none]"])
def test_none_answers(answer):
    assert parse_list(answer, prefix="")[0] == []


def test_escaped_quotes_in_loose_output():
    items, _ = parse_list('Entities: "Paris", "The \\"Rock\\""', prefix="")
    assert items == ["Paris", 'The "Rock"']


def test_items_over_200_chars_are_left_out_and_listed():
    long = "A" * 201
    items, _ = parse_list(f'["{long}", "Paris", "{"B" * 200}"]', prefix="")
    assert items == ["Paris", "B" * 200]
    parsed = parse_answer(f'["{long}", "Paris", 7, {{"x": 1}}, null]', prefix="")
    assert parsed.items == ["Paris"] and sorted(parsed.dropped) == sorted([long, "7", '{"x": 1}'])


def test_lone_surrogates_and_control_characters_are_cleaned():
    parsed = parse_answer('["Par\\ud800is", "Lon\\u0000don\\u0007", "Tab\\tok"]', prefix="")
    assert parsed.items == ["Par\ufffdis", "London", "Tab\tok"]
    for item in parsed.items:
        item.encode("utf-8")  # storable: no lone surrogate left


def test_huge_hostile_strings_are_fast_and_safe():
    start = time.perf_counter()
    assert parse_list("[" * 100_000, prefix="")[0] == []  # deep nesting: RecursionError is caught
    items, _ = parse_list('["' + "x" * 1_000_000 + '"]', prefix="")
    assert items == []
    items, _ = parse_list(", ".join(["word"] * 50_000) + ", Paris", prefix="")
    assert items == ["word", "Paris"]
    assert parse_list("\x00\x1e\x1f\ud800", prefix="")[0] == ["\ufffd"]  # cleaned, storable
    assert time.perf_counter() - start < 5


def test_code_is_never_evaluated(tmp_path):
    target = tmp_path / "pwned"
    payloads = [
        f"__import__('pathlib').Path({str(target)!r}).touch()",
        f"[__import__('pathlib').Path({str(target)!r}).touch()]",
        f'["x", __import__("pathlib").Path("{target}").touch()]',
        "{{ self.__init__.__globals__ }}",
    ]
    for payload in payloads:
        items, ok = parse_list(payload, prefix="")
        assert ok is False
        assert all(isinstance(i, str) for i in items)
    assert not target.exists()
    # a payload that is inside a valid JSON list stays an inert string
    items, ok = parse_list('["__import__(\'os\').system(\'echo hi\')"]', prefix="")
    assert items == ["__import__('os').system('echo hi')"]
    assert ok


# -- properties: any answer, any text ---------------------------------------------------------

_ANSWERS = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=10), max_size=3)), max_size=8).map(json.dumps),
)


@settings(max_examples=300, deadline=None)
@given(_ANSWERS, st.sampled_from(["", "[", '["']))
def test_parse_never_raises_and_returns_clean_strings(answer, prefix):
    parsed = parse_answer(answer, prefix)
    assert isinstance(parsed.well_formed, bool)
    for item in parsed.items + parsed.dropped:
        assert isinstance(item, str)
        item.encode("utf-8")  # no lone surrogates
    for item in parsed.items:
        assert item == item.strip() and 0 < len(item) <= 200
    assert len(set(parsed.items)) == len(parsed.items)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(min_size=1, max_size=30))
def test_every_occurrence_is_inside_the_text_and_matches_the_answer(text, answer):
    def norm(s: str) -> str:
        return " ".join(s.lower().split())

    forms = {norm(answer), norm(answer.strip().strip(_EDGE_PUNCT).strip())}
    for start, end in find_occurrences(text, answer):
        assert 0 <= start < end <= len(text)
        assert norm(text[start:end]) in forms, (text[start:end], answer)
