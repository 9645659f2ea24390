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


DEFAULT_MODELS = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "all-minilm-l6-v2")


def _project(tmp_path, models=DEFAULT_MODELS):
    """A copy of the project in tmp_path/proj that reads ../shared/data, as in the repository (or a skip)."""
    if not (DATA / "train.conll").exists():
        pytest.skip(f"real data not found at {DATA}")
    missing = [m for m in models if not zoo.is_ready(m)]
    if missing:
        pytest.skip(f"models not installed: {missing}; run `python -m spacy_el4ner models pull [NAME]`")
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "project.yml", proj / "project.yml")
    shutil.copytree(ROOT / "scripts", proj / "scripts")
    (tmp_path / "shared").symlink_to(DATA.parent.parent, target_is_directory=True)
    return proj


def test_workflow_all_on_tiny_sample(tmp_path):
    proj = _project(tmp_path)
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


def test_workflow_cllmfs_on_tiny_sample(tmp_path):
    """The second method as a workflow: two CLLMFS adapters on Gemma 3 270M (two training slices), their
    combination chosen on dev by calibrate, the test run with it and each adapter alone, the pipeline built."""
    proj = _project(tmp_path, (*DEFAULT_MODELS, "gemma-3-270m"))
    cmd = [
        sys.executable, "-m", "weasel", "run", "cllmfs", str(proj),
        "--vars.n_train", "8", "--vars.n_test", "2", "--vars.n_dev", "2", "--vars.k", "2", "--vars.tagger", "none",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    store_labels = json.loads((proj / "stores" / "wnut17" / "meta.json").read_text())["labels"]
    metas = {}
    for name in ("adapter-a", "adapter-b"):
        folder = proj / "training" / "wnut17" / name
        assert (folder / "adapter_model.safetensors").exists()
        metas[name] = json.loads((folder / "el4ner_finetune.json").read_text())
    # A learnt from the store's 8 sentences, B from the next 8 (other sentences, the store's labels)
    assert metas["adapter-a"]["n_train_docs"] == metas["adapter-b"]["n_train_docs"] == 8
    assert metas["adapter-a"]["labels"] == metas["adapter-b"]["labels"] == store_labels
    import spacy

    from spacy_el4ner.readers import read_docs

    train = read_docs(DATA / "train.conll", spacy.blank("en"))
    assert {e.label_ for d in train[8:16] for e in d.ents} != set(store_labels)  # B's slice alone lacks some
    calibration = json.loads((proj / "metrics" / "wnut17-cllmfs-dev" / "calibration.json").read_text())
    assert isinstance(calibration["accept_finder_sets"], list)
    results = json.loads((proj / "metrics" / "wnut17-cllmfs" / "results.json").read_text())
    a, b = (f"gemma-3-270m+training/wnut17/adapter-{x}" for x in "ab")
    assert set(results["results"]) == {"ensemble", f"alone:{a}", f"alone:{b}"}
    assert all(r["n_sentences"] == 2 for r in results["results"].values())
    settings = results["meta"]["settings"]
    assert settings["member.prompt"] == "fine-tuned" and settings["member.constrained"] is True
    assert settings["accept.finder_sets"] == calibration["accept_finder_sets"]  # from --calibration
    assert "| ensemble |" in (proj / "metrics" / "REPORT.md").read_text()
    # the assembled pipeline holds its own copies of both adapters
    copied = sorted(p.name for p in (proj / "training" / "wnut17-cllmfs" / "el4ner" / "adapters").iterdir())
    assert len(copied) == 2, copied
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0
    for step in ("adapter-a", "adapter-b", "evaluate-cllmfs", "assemble-cllmfs"):
        assert f"Skipping '{step}'" in second.stdout, second.stdout[-2000:]
