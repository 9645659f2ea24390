"""``calibrate`` on a saved predictions file."""
import json

from typer.testing import CliRunner

from spacy_el4ner.cli import app


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    return path


def _row(i):
    cands = [
        {"start": 0, "end": 3, "label": "PER", "extracted_by": ["big", "small"], "confidence": 0.9, "accepted": True},
        {"start": 4, "end": 7, "label": "PER", "extracted_by": ["small"], "confidence": 0.8, "accepted": True},
    ]
    return {"text": "Tim saw Ann", "gold": [[0, 3, "PER", "Tim"]], "predicted": [], "candidates": cands}


def test_calibrate_cli_prints_the_setting_and_writes_json(tmp_path):
    preds = _write(tmp_path / "predictions-ensemble.jsonl", [_row(i) for i in range(10)])
    out = tmp_path / "calibration.json"
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--output", str(out), "--samples", "50"])
    assert res.exit_code == 0, res.output
    assert 'finder_sets = [["big", "small"]]' in res.output
    assert "--set 'accept.finder_sets=" in res.output
    saved = json.loads(out.read_text())
    assert saved["accept_finder_sets"] == [["big", "small"]]
    assert saved["f1_union"] < saved["f1_calibrated"] == 100.0


def test_calibrate_cli_names_a_bad_line(tmp_path):
    preds = tmp_path / "bad.jsonl"
    preds.write_text(json.dumps(_row(0)) + "\n" + json.dumps({"text": "x", "gold": [[0]]}) + "\n", encoding="utf8")
    res = CliRunner().invoke(app, ["calibrate", str(preds)])
    assert res.exit_code == 1 and "line 2" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 1 and "no such file" in " ".join(res.output.split())


def test_calibrate_cli_renames_members(tmp_path):
    preds = _write(tmp_path / "p.jsonl", [_row(i) for i in range(10)])
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--samples", "20", "--rename", "big=qwen", "--rename", "small=smol"])
    assert res.exit_code == 0, res.output
    assert 'finder_sets = [["qwen", "smol"]]' in res.output
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--rename", "nobody=x"])
    assert res.exit_code == 1 and "not in the run" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--rename", "big"])
    assert res.exit_code == 1 and "OLD=NEW" in res.output


def test_calibrate_cli_chooses_a_threshold(tmp_path):
    rows = []
    for i in range(20):
        cands = [
            {"start": 0, "end": 3, "label": "PER", "extracted_by": ["big"], "confidence": 0.55, "accepted": True},
            {"start": 8, "end": 11, "label": "PER", "extracted_by": ["big"], "confidence": 0.38, "accepted": True},
        ]
        rows.append({"text": "Tim saw Ann", "gold": [[0, 3, "PER", "Tim"]], "predicted": [], "candidates": cands})
    preds = _write(tmp_path / "p.jsonl", rows)
    out = tmp_path / "c.json"
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--samples", "20", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "--set 'accept.min_confidence=0.4'" in res.output
    saved = json.loads(out.read_text())
    assert saved["min_confidence"] == 0.4 and saved["threshold"]["f1_after"] == 100.0
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--samples", "20", "--no-threshold"])
    assert res.exit_code == 0 and "min_confidence" not in res.output
    # one wrong span in 20 sentences: the best threshold's gain is within noise, so it is not printed as a setting
    for row in rows[1:]:
        row["candidates"] = row["candidates"][:1]
    preds = _write(tmp_path / "q.jsonl", rows)
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--samples", "200"])
    assert res.exit_code == 0, res.output
    assert "within noise" in " ".join(res.output.split()) and "--set 'accept.min_confidence" not in res.output


def test_calibrate_cli_keeps_the_defaults_when_nothing_was_accepted(tmp_path):
    # a weak dev run (e.g. a workflow's tiny sample) accepts no span: the workflow goes on with the union
    row = {"text": "Tim saw Ann", "gold": [[0, 3, "PER", "Tim"]], "predicted": [], "candidates": []}
    preds = _write(tmp_path / "p.jsonl", [row, row])
    out = tmp_path / "calibration.json"
    res = CliRunner().invoke(app, ["calibrate", str(preds), "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "keep the defaults" in " ".join(res.output.split())
    saved = json.loads(out.read_text())
    assert saved["accept_finder_sets"] == [] and saved["min_confidence"] is None and saved["sentences"] == 2
    assert "no accepted candidate" in saved["nothing_to_calibrate"]
