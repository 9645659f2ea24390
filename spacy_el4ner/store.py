"""The demonstration store: labelled Docs in a DocBin, with their span embeddings."""
import io
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from .errors import Errors
from .models.protocol import Embedder

logger = logging.getLogger("spacy_el4ner")

STORE_FORMAT = 1
_ATTRS = ["ORTH", "SPACY", "TAG", "POS", "ENT_IOB", "ENT_TYPE", "SENT_START"]


class StoreError(ValueError):
    """The store's files are missing, corrupt or inconsistent."""


class DemoStore:
    """Labelled example Docs for in-context demonstrations.

    vocab (Vocab): The vocab to read Docs into.
    labels (Sequence[str]): The labels the component knows; Docs with others are rejected.
        Empty: any label is accepted.
    embedder (Optional[Embedder]): Encoder for span embeddings (computed lazily, on first search).
    """

    def __init__(self, vocab: Optional[Vocab] = None, labels: Sequence[str] = (), embedder: Optional[Embedder] = None) -> None:
        self.vocab = vocab if vocab is not None else Vocab()
        self.labels: List[str] = list(labels)
        self.embedder = embedder
        self.docs: List[Doc] = []
        self._span_emb: Optional[numpy.ndarray] = None
        self._owners: Optional[numpy.ndarray] = None
        self._doc_emb: Optional[numpy.ndarray] = None
        self._emb_name: Optional[str] = None
        # a configured folder that did not exist at construction: spacy.load builds the component
        # from its config before from_disk() loads the saved copy, so this is an error only if
        # nothing was loaded by the time the store is used (``require_loaded``)
        self.missing_path: Optional[str] = None

    def require_loaded(self) -> None:
        """RAISES (StoreError): if the configured store folder was missing and nothing replaced it."""
        if self.missing_path is not None:
            raise StoreError(Errors.E308.format(path=self.missing_path))

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def n_spans(self) -> int:
        return sum(len(d.ents) for d in self.docs)

    def add(self, docs: Iterable[Doc]) -> int:
        """Add labelled Docs (their ``doc.ents``).

        RETURNS (int): How many Docs were added (whitespace-only Docs are skipped).
        RAISES (ValueError): If a Doc has a label the component does not know.
        """
        if isinstance(docs, (str, bytes, Doc)) or not hasattr(docs, "__iter__"):
            raise TypeError(Errors.E301.format(type=type(docs).__name__))
        new = list(docs)
        wrong = [type(d).__name__ for d in new if not isinstance(d, Doc)]
        if wrong:
            raise TypeError(Errors.E302.format(types=sorted(set(wrong))))
        if self.labels:
            known = set(self.labels)
            for doc in new:
                bad = sorted({e.label_ for e in doc.ents if e.label_ not in known})
                if bad:
                    raise ValueError(Errors.E318.format(text=doc.text[:60], bad=bad, labels=self.labels))
        added = 0
        for doc in new:
            if not doc.text.strip():
                continue
            self.docs.append(doc)
            added += 1
        self._invalidate()
        return added

    def reset(self, docs: Iterable[Doc] = ()) -> None:
        """Hold exactly ``docs`` (nothing: empty)."""
        self.docs = []
        self._invalidate()
        self.add(docs)

    def _invalidate(self) -> None:
        self._span_emb = self._owners = self._doc_emb = None

    def _index(self) -> None:
        if self._span_emb is not None and self._emb_name == getattr(self.embedder, "name", None):
            return
        if self.embedder is None:
            raise StoreError(Errors.E309)
        texts: List[str] = []
        owners: List[int] = []
        for i, doc in enumerate(self.docs):
            for ent in doc.ents:
                texts.append(ent.text)
                owners.append(i)
        self._span_emb = numpy.asarray(self.embedder.embed(texts), dtype="float32")
        self._owners = numpy.asarray(owners, dtype="int64")
        self._doc_emb = numpy.asarray(self.embedder.embed([d.text for d in self.docs]), dtype="float32")
        self._emb_name = getattr(self.embedder, "name", None)

    def span_index(self) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """RETURNS: (span embeddings (M, d), owner doc index per span (M,))."""
        self._index()
        assert self._span_emb is not None and self._owners is not None
        return self._span_emb, self._owners

    def span_labels(self) -> List[str]:
        """RETURNS (List[str]): The label of each stored span, in the order of ``span_index()``."""
        return [ent.label_ for doc in self.docs for ent in doc.ents]

    def doc_embeddings(self) -> numpy.ndarray:
        self._index()
        assert self._doc_emb is not None
        return self._doc_emb

    # -- serialization ---------------------------------------------------------------------
    def _docbin_bytes(self) -> bytes:
        db = DocBin(attrs=_ATTRS, store_user_data=False)
        for doc in self.docs:
            db.add(doc)
        return db.to_bytes()

    def _meta(self) -> Dict[str, Any]:
        return {
            "format": STORE_FORMAT,
            "labels": self.labels,
            "encoder": self._emb_name,
            "n_docs": len(self.docs),
            "n_spans": self.n_spans,
            "label_counts": self.label_counts(),
        }

    def label_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for doc in self.docs:
            for ent in doc.ents:
                counts[ent.label_] = counts.get(ent.label_, 0) + 1
        return counts

    def _arrays_bytes(self) -> bytes:
        buf = io.BytesIO()
        if self._span_emb is not None:
            numpy.savez(buf, span_emb=self._span_emb, owners=self._owners, doc_emb=self._doc_emb)
        return buf.getvalue()

    def to_bytes(self) -> bytes:
        return srsly.msgpack_dumps(
            {"meta": self._meta(), "docs": self._docbin_bytes(), "arrays": self._arrays_bytes()}
        )

    def from_bytes(self, data: bytes) -> "DemoStore":
        try:
            msg = srsly.msgpack_loads(data)
            self._load(msg["meta"], msg["docs"], msg.get("arrays") or b"")
        except StoreError:
            raise
        except Exception as err:
            raise StoreError(Errors.E312.format(err=err)) from err
        return self

    def to_disk(self, path: Union[str, Path]) -> None:
        """Save as a folder: docs.spacy, embeddings.npz (when computed) and meta.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "docs.spacy").write_bytes(self._docbin_bytes())
        arrays = self._arrays_bytes()
        emb = path / "embeddings.npz"
        if arrays:
            emb.write_bytes(arrays)
        elif emb.exists():
            emb.unlink()
        srsly.write_json(path / "meta.json", self._meta())

    def from_disk(self, path: Union[str, Path]) -> "DemoStore":
        path = Path(path)
        for name in ("docs.spacy", "meta.json"):
            if not (path / name).exists():
                raise StoreError(Errors.E313.format(path=path, name=name))
        try:
            meta = srsly.read_json(path / "meta.json")
        except ValueError as err:
            raise StoreError(Errors.E314.format(path=path / "meta.json", err=err)) from err
        emb = path / "embeddings.npz"
        try:
            self._load(meta, (path / "docs.spacy").read_bytes(), emb.read_bytes() if emb.exists() else b"")
        except StoreError as err:
            raise StoreError(Errors.E305.format(path=path, err=err)) from err
        return self

    def _load(self, meta: Dict[str, Any], docs_bytes: bytes, arrays: bytes) -> None:
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
            raise StoreError(Errors.E310.format(meta=meta))
        try:
            docs = list(DocBin().from_bytes(docs_bytes).get_docs(self.vocab))
        except Exception as err:
            raise StoreError(Errors.E315.format(err=err)) from err
        if len(docs) != meta.get("n_docs"):
            raise StoreError(Errors.E311.format(n=len(docs), expected=meta.get("n_docs")))
        stored_labels = list(meta.get("labels") or [])
        if self.labels and stored_labels and set(stored_labels) - set(self.labels):
            logger.warning("Store labels %s differ from the component's %s", stored_labels, self.labels)
        if not self.labels:
            self.labels = stored_labels
        self.docs = docs
        self.missing_path = None
        self._invalidate()
        if arrays:
            try:
                with numpy.load(io.BytesIO(arrays), allow_pickle=False) as z:
                    span_emb, owners, doc_emb = z["span_emb"], z["owners"], z["doc_emb"]
            except Exception as err:
                raise StoreError(Errors.E317.format(err=err)) from err
            if span_emb.shape[0] != self.n_spans or doc_emb.shape[0] != len(docs):
                raise StoreError(Errors.E316)
            self._span_emb, self._owners, self._doc_emb = span_emb, owners, doc_emb
            self._emb_name = meta.get("encoder")
