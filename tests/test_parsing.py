import time

import pytest

from spacy_el4ner.parsing import parse_list


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


def test_items_over_200_chars_dropped():
    long = "A" * 201
    items, _ = parse_list(f'["{long}", "Paris", "{"B" * 200}"]', prefix="")
    assert items == ["Paris", "B" * 200]


def test_huge_hostile_strings_are_fast_and_safe():
    start = time.perf_counter()
    assert parse_list("[" * 100_000, prefix="")[0] == []  # deep nesting: RecursionError is caught
    items, _ = parse_list('["' + "x" * 1_000_000 + '"]', prefix="")
    assert items == []
    items, _ = parse_list(", ".join(["word"] * 50_000) + ", Paris", prefix="")
    assert items == ["word", "Paris"]
    assert parse_list("\x00\x1e\x1f\ud800", prefix="")[0] == ["\x00\x1e\x1f\ud800"]
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
