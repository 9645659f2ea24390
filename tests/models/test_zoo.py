"""The zoo's GGUF files: assembled once from package chunks, sha256-checked, kept in the cache
folder so that a later environment without the packages still has them."""
import hashlib
import sys

import pytest

from spacy_el4ner.models import zoo
from spacy_el4ner.models.protocol import ModelLoadError


@pytest.fixture
def chunked(tmp_path, monkeypatch):
    """A fake embedded model shipped as two chunks in an importable package folder."""
    pkg = tmp_path / "site" / "el4ner_test_chunks"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "part01.bin").write_bytes(b"GGUF" + b"a" * 100)
    (pkg / "data" / "part02.bin").write_bytes(b"b" * 50)
    digest = hashlib.sha256(b"GGUF" + b"a" * 100 + b"b" * 50).hexdigest()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    spec = zoo.ModelSpec(
        name="test-chunked", kind="gguf",
        files=(("el4ner_test_chunks", "data/part01.bin"), ("el4ner_test_chunks", "data/part02.bin")),
        packages=("el4ner-test-chunks",), sha256=digest, licence="-", description="-", upstream="-",
    )
    monkeypatch.setitem(zoo.ZOO, spec.name, spec)
    return spec, pkg


def test_gguf_is_assembled_checked_and_kept(chunked):
    spec, pkg = chunked
    assert not zoo.has_gguf(spec.name)
    path = zoo.gguf_path(spec.name)
    assert path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50
    assert zoo.has_gguf(spec.name)
    for part in (pkg / "data").iterdir():  # the packages gone (a fresh environment): still there
        part.unlink()
    sys.modules.pop("el4ner_test_chunks", None)
    assert zoo.gguf_path(spec.name) == path


def test_a_wrong_checksum_or_a_changed_file_is_refused(chunked, monkeypatch):
    spec, _ = chunked
    monkeypatch.setitem(zoo.ZOO, spec.name, zoo.ModelSpec(**{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(ModelLoadError, match="corrupt or of another version"):
        zoo.gguf_path(spec.name)
    assert not (zoo.cache_root() / f"{spec.name}.gguf").exists()
    assert not (zoo.cache_root() / f"{spec.name}.gguf.partial").exists()
    monkeypatch.setitem(zoo.ZOO, spec.name, spec)
    path = zoo.gguf_path(spec.name)
    path.write_bytes(b"GGUF truncated")  # a kept file that changed is assembled again
    assert not zoo.has_gguf(spec.name)
    assert zoo.gguf_path(spec.name).stat().st_size == 154


def test_a_folder_model_has_no_gguf():
    with pytest.raises(ModelLoadError, match="ships no GGUF"):
        zoo.gguf_path("all-minilm-l6-v2")
