"""``compare``: paired bootstrap between two saved prediction files."""
import json

import pytest
from typer.testing import CliRunner

from spacy_el4ner.cli import app
from spacy_el4ner.cli.compare import read_predictions


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    return path


def _row(text, gold, predicted):
    return {"text": text, "gold": gold, "predicted": predicted, "candidates": []}


def test_read_predictions_counts_exact_matches(tmp_path):
    p = _write(tmp_path / "a.jsonl", [
        _row("Tim Cook in Berlin", [[0, 8, "person", "Tim Cook"], [12, 18, "location", "Berlin"]],
             [[0, 3, "person", "Tim"], [12, 18, "location", "Berlin"]]),
        _row("nothing here", [], [[0, 7, "person", "nothing"]]),
    ])
    texts, counts = read_predictions(p)
    assert texts == ["Tim Cook in Berlin", "nothing here"]
    assert counts == [(1, 1, 1), (0, 1, 0)]


def test_read_predictions_names_the_bad_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(_row("a", [], [])) + "\n{not json\n", encoding="utf8")
    with pytest.raises(ValueError, match="line 2"):
        read_predictions(p)
    with pytest.raises(ValueError, match="no such file"):
        read_predictions(tmp_path / "missing.jsonl")


def test_compare_cli(tmp_path):
    gold = [[0, 3, "person", "Tim"]]
    good = _write(tmp_path / "good.jsonl", [_row(f"Tim {i}", gold, gold) for i in range(20)])
    bad = _write(tmp_path / "bad.jsonl", [_row(f"Tim {i}", gold, gold if i < 10 else []) for i in range(20)])
    out = tmp_path / "cmp.json"
    res = CliRunner().invoke(app, ["compare", str(good), str(bad), "--samples", "200", "--output", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["f1_a"] == 100.0 and data["diff"] > 0 and data["ci_low"] > 0
    other = _write(tmp_path / "other.jsonl", [_row(f"Ann {i}", [], []) for i in range(20)])
    res = CliRunner().invoke(app, ["compare", str(good), str(other)])
    assert res.exit_code == 1 and "same split" in res.output
