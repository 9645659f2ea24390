"""``convert``: token/BIO -> DocBin, with --skip and --limit for training slices."""
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_el4ner.cli import app

BIO = "".join(f"Tim{i}\tB-person\nsaw\tO\nRome\tB-location\n\n" for i in range(5))


def _texts(path):
    return [d.text.strip() for d in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)]


def test_convert_skip_and_limit(tmp_path):
    src = tmp_path / "train.conll"
    src.write_text(BIO, encoding="utf8")
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "a.spacy"), "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert _texts(tmp_path / "a.spacy") == ["Tim0 saw Rome", "Tim1 saw Rome"]
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "b.spacy"), "--skip", "2", "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert _texts(tmp_path / "b.spacy") == ["Tim2 saw Rome", "Tim3 saw Rome"]
    assert "2 sentences, 4 entities" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "c.spacy"), "--skip", "4"])
    assert res.exit_code == 0 and _texts(tmp_path / "c.spacy") == ["Tim4 saw Rome"]


def test_convert_refuses_a_skip_past_the_end(tmp_path):
    src = tmp_path / "train.conll"
    src.write_text(BIO, encoding="utf8")
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "x.spacy"), "--skip", "5"])
    assert res.exit_code == 1 and "has only 5 sentences" in " ".join(res.output.split())
    assert not (tmp_path / "x.spacy").exists()
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "x.spacy"), "--skip", "-1"])
    assert res.exit_code == 1
