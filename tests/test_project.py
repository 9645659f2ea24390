"""The `spacy project` (weasel) workflow runs end to end on a tiny sample with a real model,
and a second run skips the steps whose inputs did not change."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_el4ner.models import zoo

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "wnut17"

pytestmark = pytest.mark.slow


def test_workflow_all_on_tiny_sample(tmp_path):
    if not (DATA / "train.conll").exists():
        pytest.skip(f"real data not found at {DATA}")
    if not all(zoo.is_ready(m) for m in ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "all-minilm-l6-v2")):
        pytest.skip("embedded models not installed: run `python -m spacy_el4ner models pull`")
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "project.yml", proj / "project.yml")
    shutil.copytree(ROOT / "scripts", proj / "scripts")
    # the workflow reads ../shared/data relative to the project, as in the repository
    (tmp_path / "shared").symlink_to(DATA.parent.parent, target_is_directory=True)
    cmd = [
        sys.executable, "-m", "weasel", "run", "all", str(proj),
        "--vars.n_train", "30", "--vars.n_test", "2", "--vars.k", "2",
        "--vars.members", "qwen2.5-coder-0.5b-instruct",
        "--vars.variants", "none", "--vars.tagger", "none",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((proj / "metrics" / "wnut17" / "results.json").read_text())
    run = results["results"]["ensemble"]
    assert run["n_sentences"] == 2
    assert 0.0 <= run["f"] <= 100.0
    report = (proj / "metrics" / "REPORT.md").read_text()
    assert report.count("| run | P | R | F1 |") == 1  # one dataset, one results table
    assert report.count("| ensemble |") == 2  # its row in the scores and in the stage analysis
    assert "Where gold entities are lost" in report
    assert (proj / "stores" / "wnut17" / "meta.json").exists()
    # `assemble` built the evaluated ensemble as a pipeline: spacy.load reads it from another folder (its own
    # copy of the store, an empty response cache there) and gives the entities the evaluation predicted
    rows = [json.loads(line) for line in (proj / "metrics" / "wnut17" / "predictions-ensemble.jsonl").open()]
    assert len(rows) == 2
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import json, sys, spacy\n"
        "from spacy.tokens import Doc\n"
        "from spacy_el4ner.readers import read_docs\n"
        "nlp = spacy.load(sys.argv[1])\n"
        "refs = read_docs(sys.argv[2], spacy.blank('en'))[:2]\n"
        "docs = list(nlp.pipe([Doc(nlp.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r]) for r in refs]))\n"
        "passes = sum(s.get('forward_passes', 0) for s in nlp.get_pipe('el4ner').model_stats().values())\n"
        "print(json.dumps({'texts': [d.text for d in docs], 'ents': [[[e.start_char, e.end_char, e.label_] for e in d.ents] for d in docs], 'passes': passes}))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(proj / "training" / "wnut17"), str(DATA / "test.conll")],
        capture_output=True, text=True, timeout=600, cwd=elsewhere,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    out = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert out["texts"] == [r["text"] for r in rows]
    assert out["ents"] == [[e[:3] for e in sorted(r["predicted"])] for r in rows]
    assert out["passes"] > 0  # answered by the model, not by the evaluation's cache
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0
    assert "Skipping 'evaluate'" in second.stdout, second.stdout[-2000:]
    assert "Skipping 'assemble'" in second.stdout, second.stdout[-2000:]
