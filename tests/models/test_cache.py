from spacy_el4ner.models.cache import ResponseCache


def test_set_get(tmp_path):
    cache = ResponseCache(tmp_path / "c")
    assert cache.get("k") is None
    cache.set("k", "answer")
    cache.set("scores", [-0.5, -1.25])
    cache.set("unicode", "Zürich \u2603")
    assert cache.get("k") == "answer"
    assert cache.get("scores") == [-0.5, -1.25]
    assert cache.get("unicode") == "Zürich \u2603"
    cache.set("k", "replaced")
    assert cache.get("k") == "replaced"
    assert len(cache) == 3


def test_key_stability():
    k = ResponseCache.key("model", None, "gen", "prompt", 64, ["]"])
    # a fixed sha256 of the JSON form: the same in every process and version
    assert k == ResponseCache.key("model", None, "gen", "prompt", 64, ["]"])
    assert len(k) == 64 and all(c in "0123456789abcdef" for c in k)
    assert k != ResponseCache.key("model", None, "gen", "prompt", 65, ["]"])
    assert k != ResponseCache.key("model", None, "gen", "prompt ", 64, ["]"])
    assert ResponseCache.key({"b": 1, "a": 2}) == ResponseCache.key({"a": 2, "b": 1})
    import hashlib
    import json

    expected = hashlib.sha256(json.dumps(["x"], ensure_ascii=False, sort_keys=True).encode("utf8")).hexdigest()
    assert ResponseCache.key("x") == expected


def test_survives_reopen(tmp_path):
    cache = ResponseCache(tmp_path / "c")
    cache.set("a", {"x": 1})
    del cache
    again = ResponseCache(tmp_path / "c")
    assert again.get("a") == {"x": 1}
    assert len(again) == 1
    assert (tmp_path / "c" / "responses.sqlite").exists()


def test_two_handles_share_the_file(tmp_path):
    a = ResponseCache(tmp_path / "c")
    b = ResponseCache(tmp_path / "c")
    a.set("k", 1)
    assert b.get("k") == 1


def test_trimmed_to_max_entries(tmp_path):
    cache = ResponseCache(tmp_path / "c", max_entries=10)
    for i in range(999):
        cache.set(f"k{i}", i)
    assert len(cache) == 999  # trimming happens every 1000 writes
    cache.set("k999", 999)
    assert len(cache) == 10
    # the oldest entries went; the newest stayed
    assert cache.get("k0") is None
    assert cache.get("k989") is None
    assert [cache.get(f"k{i}") for i in range(990, 1000)] == list(range(990, 1000))


def test_unreadable_file_is_ignored(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    cache = ResponseCache(folder)
    assert cache.get("k") is None  # warns, does not raise
    cache.set("k", 1)  # warns, does not raise


def _adapter(folder, weights: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 4}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return str(folder)


def test_adapters_are_known_by_content(tmp_path):
    import shutil

    cache = ResponseCache(tmp_path / "c")
    assert cache.adapter_id(None) is None
    first = _adapter(tmp_path / "adapters" / "a", b"weights one")
    # first seen: the folder itself, so keys written before contents were recorded stay valid
    assert cache.adapter_id(first) == first
    # a copy elsewhere (a saved pipeline's): the same answers
    shutil.copytree(first, tmp_path / "pipeline" / "a")
    assert cache.adapter_id(str(tmp_path / "pipeline" / "a")) == first
    # retrained into the same folder: not the old answers
    _adapter(tmp_path / "adapters" / "a", b"weights two")
    second = cache.adapter_id(first)
    assert second != first and second.startswith(first + "#") and len(second) == len(first) + 17
    assert ResponseCache(tmp_path / "c").adapter_id(first) == second  # recorded: the same in another process
    # back to the first weights: their answers again
    _adapter(tmp_path / "adapters" / "a", b"weights one")
    assert cache.adapter_id(first) == first
    # files missing: the folder as given (loading it fails and says so)
    assert cache.adapter_id(str(tmp_path / "nothing")) == str(tmp_path / "nothing")
    # a config change alone is other content too
    (tmp_path / "adapters" / "a" / "adapter_config.json").write_text('{"r": 8}')
    assert cache.adapter_id(first) not in (first, second)


def test_adapter_id_on_an_unreadable_cache(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    a = _adapter(tmp_path / "a", b"w")
    name = ResponseCache(tmp_path / "c").adapter_id(a)
    assert name.startswith(a + "#")  # still specific to the content


def test_export_and_import_carry_answers_to_another_machine(tmp_path):
    import time

    here = ResponseCache(tmp_path / "here")
    adapter = _adapter(tmp_path / "adapters" / "x", b"weights-1")
    name = here.adapter_id(adapter)
    here.set("old", "before")
    time.sleep(0.01)
    since = time.time()
    here.set(ResponseCache.key(name, "prompt"), "<<< Paris >>>")
    here.set("scores", [-0.5, -1.25])
    assert here.export(tmp_path / "all.jsonl.gz") == 3
    assert here.export(tmp_path / "new.jsonl.gz", since=since) == 2
    # a fresh machine: the same adapter weights (retrained identically) find the answers
    there = ResponseCache(tmp_path / "there")
    assert there.import_(tmp_path / "new.jsonl.gz") == 2
    assert there.import_(tmp_path / "new.jsonl.gz") == 0  # already there
    same = _adapter(tmp_path / "other-clone" / "adapters" / "x", b"weights-1")
    assert there.get(ResponseCache.key(there.adapter_id(same), "prompt")) == "<<< Paris >>>"
    assert there.get("scores") == [-0.5, -1.25] and there.get("old") is None
    # other weights in that folder do not get them
    third = ResponseCache(tmp_path / "third")
    third.import_(tmp_path / "all.jsonl.gz")
    changed = _adapter(tmp_path / "adapters" / "x", b"weights-2")
    assert third.get(ResponseCache.key(third.adapter_id(changed), "prompt")) is None


def test_import_refuses_conflicting_adapter_names_and_bad_files(tmp_path):
    import pytest

    folder = tmp_path / "adapters" / "x"
    here = ResponseCache(tmp_path / "here")
    here.adapter_id(_adapter(folder, b"weights-1"))
    here.export(tmp_path / "e.jsonl.gz")
    # a cache that already calls other weights by that folder's name: the import would mix them up
    there = ResponseCache(tmp_path / "there")
    there.adapter_id(_adapter(folder, b"weights-2"))
    with pytest.raises(ValueError, match="import into a new cache folder"):
        there.import_(tmp_path / "e.jsonl.gz")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a response cache export"):
        ResponseCache(tmp_path / "fresh").import_(tmp_path / "bad.jsonl.gz")
