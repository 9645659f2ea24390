import io

import numpy
import pytest
import srsly
import spacy

from spacy_el4ner.store import DemoStore, StoreError

from conftest import HashEmbedder, make_doc


def ents_of(docs):
    return [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]


@pytest.fixture
def store(nlp, labelled_docs, hash_embedder):
    s = DemoStore(nlp.vocab, ["PER", "ORG", "LOC"], hash_embedder)
    assert s.add(labelled_docs) == 4
    return s


def test_add_len_labels(nlp, store, labelled_docs):
    assert len(store) == 4
    assert store.n_spans == sum(len(d.ents) for d in labelled_docs) == 11
    assert store.labels == ["PER", "ORG", "LOC"]
    assert store.label_counts() == {"ORG": 3, "PER": 2, "LOC": 6}


def test_add_skips_whitespace_docs(nlp, hash_embedder):
    s = DemoStore(nlp.vocab, ["LOC"], hash_embedder)
    added = s.add([nlp.make_doc("   "), nlp.make_doc(""), make_doc(nlp, "Paris is nice.", [("Paris", "LOC")])])
    assert len(s) == 1
    assert added == 1


def test_unknown_label_rejected_with_clear_message(nlp, labelled_docs):
    s = DemoStore(nlp.vocab, ["PER", "LOC"])
    with pytest.raises(ValueError) as info:
        s.add(labelled_docs)
    msg = str(info.value)
    assert "'ORG'" in msg
    assert "`labels`" in msg and "Add" in msg
    assert len(s) == 0  # nothing half-added


def test_no_labels_accepts_any(nlp, labelled_docs):
    s = DemoStore(nlp.vocab)
    s.add(labelled_docs)
    assert len(s) == 4


def test_span_index(store, labelled_docs):
    emb, owners = store.span_index()
    assert emb.shape == (11, 64)
    assert owners.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert store.doc_embeddings().shape == (4, 64)


def test_span_index_without_encoder(nlp, labelled_docs):
    s = DemoStore(nlp.vocab)
    s.add(labelled_docs)
    with pytest.raises(StoreError, match="no encoder"):
        s.span_index()


def test_disk_round_trip_with_embeddings(tmp_path, store, labelled_docs):
    emb, owners = store.span_index()
    doc_emb = store.doc_embeddings()
    store.to_disk(tmp_path / "store")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["docs.spacy", "embeddings.npz", "meta.json"]
    meta = srsly.read_json(tmp_path / "store" / "meta.json")
    assert meta["n_docs"] == 4 and meta["encoder"] == "hash-bow"

    embedder = HashEmbedder()
    other = DemoStore(spacy.blank("en").vocab, [], embedder).from_disk(tmp_path / "store")
    assert [d.text for d in other.docs] == [d.text for d in labelled_docs]
    assert ents_of(other.docs) == ents_of(labelled_docs)
    assert other.labels == ["PER", "ORG", "LOC"]  # taken from the store when none given
    emb2, owners2 = other.span_index()
    assert embedder.n_calls == 0  # embeddings were loaded, not recomputed
    assert numpy.array_equal(emb, emb2)
    assert numpy.array_equal(owners, owners2)
    assert numpy.array_equal(doc_emb, other.doc_embeddings())


def test_disk_round_trip_without_embeddings(tmp_path, store, labelled_docs):
    store.to_disk(tmp_path / "s")
    assert not (tmp_path / "s" / "embeddings.npz").exists()
    other = DemoStore(spacy.blank("en").vocab).from_disk(tmp_path / "s")
    assert ents_of(other.docs) == ents_of(labelled_docs)


def test_stale_embeddings_file_removed(tmp_path, store):
    store.span_index()
    store.to_disk(tmp_path / "s")
    assert (tmp_path / "s" / "embeddings.npz").exists()
    store.add([spacy.blank("en").make_doc("Another text.")])  # invalidates the embeddings
    store.to_disk(tmp_path / "s")
    assert not (tmp_path / "s" / "embeddings.npz").exists()
    assert len(DemoStore().from_disk(tmp_path / "s")) == 5


def test_bytes_round_trip(store, labelled_docs):
    store.span_index()
    data = store.to_bytes()
    embedder = HashEmbedder()
    other = DemoStore(spacy.blank("en").vocab, ["PER", "ORG", "LOC"], embedder).from_bytes(data)
    assert [d.text for d in other.docs] == [d.text for d in labelled_docs]
    assert ents_of(other.docs) == ents_of(labelled_docs)
    assert numpy.array_equal(other.span_index()[0], store.span_index()[0])
    assert embedder.n_calls == 0


def test_empty_store_round_trip(tmp_path):
    s = DemoStore(labels=["PER"])
    assert len(DemoStore().from_bytes(s.to_bytes())) == 0
    s.to_disk(tmp_path / "empty")
    assert len(DemoStore().from_disk(tmp_path / "empty")) == 0


# -- corrupt stores ----------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path, store):
    store.span_index()
    store.to_disk(tmp_path / "store")
    return tmp_path / "store"


def test_missing_docs(saved):
    (saved / "docs.spacy").unlink()
    with pytest.raises(StoreError, match="has no docs.spacy"):
        DemoStore().from_disk(saved)


def test_missing_folder(tmp_path):
    with pytest.raises(StoreError, match="meta.json|docs.spacy"):
        DemoStore().from_disk(tmp_path / "nowhere")


def test_garbage_meta(saved):
    (saved / "meta.json").write_text("{not json at all", encoding="utf8")
    with pytest.raises(StoreError, match="Corrupt .*meta.json"):
        DemoStore().from_disk(saved)


@pytest.mark.parametrize("meta", [[1, 2], {"format": 99, "n_docs": 4}, {"n_docs": 4}, "store"])
def test_unknown_meta_format(saved, meta):
    srsly.write_json(saved / "meta.json", meta)
    with pytest.raises(StoreError, match="Unknown demonstration store format"):
        DemoStore().from_disk(saved)


def test_meta_doc_count_mismatch(saved):
    meta = srsly.read_json(saved / "meta.json")
    meta["n_docs"] = 7
    srsly.write_json(saved / "meta.json", meta)
    with pytest.raises(StoreError, match="has 4 docs, its meta.json says 7"):
        DemoStore().from_disk(saved)


def test_truncated_docs(saved):
    data = (saved / "docs.spacy").read_bytes()
    (saved / "docs.spacy").write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="Corrupt docs"):
        DemoStore().from_disk(saved)


def test_embeddings_shape_mismatch(saved):
    with numpy.load(saved / "embeddings.npz") as z:
        span_emb, owners, doc_emb = z["span_emb"], z["owners"], z["doc_emb"]
    buf = io.BytesIO()
    numpy.savez(buf, span_emb=span_emb[:-2], owners=owners[:-2], doc_emb=doc_emb)
    (saved / "embeddings.npz").write_bytes(buf.getvalue())
    with pytest.raises(StoreError, match="embeddings do not match"):
        DemoStore().from_disk(saved)


def test_garbage_embeddings(saved):
    (saved / "embeddings.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(StoreError, match="Corrupt embeddings"):
        DemoStore().from_disk(saved)


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage", srsly.msgpack_dumps({"meta": {}}), srsly.msgpack_dumps([1])])
def test_corrupt_bytes(data):
    with pytest.raises(StoreError):
        DemoStore().from_bytes(data)
