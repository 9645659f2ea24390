"""The ``el4ner`` pipeline component: configuration, initialize, pipe, serialization."""
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.training import Example, validate_get_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from spacy import util

from . import registry as _registry  # noqa: F401  (registers the functions)
from .saved import cfg_from_bytes, read_cfg
from .write import Acceptance, write_docs
from .errors import Errors
from .members import Member, Members
from .models.adapters import load_adapters, save_adapters
from .models.protocol import Embedder, Model
from .models.spacy_ner import SpacyNER, load_spacy_members, save_spacy_members
from .sentences import split_units
from .settings import ACCEPT, CLASSIFY, DEFAULT_CONFIG, VALIDATE, build_settings, integer
from .runner import Runner
from .stages.classify import classify_steps
from .stages.extract import extract_steps
from .stages.validate import validate_steps
from .stages.edges import BoundaryRule
from .store import DemoStore
from .types import Unit

logger = logging.getLogger("spacy_el4ner")

def _store_labels(store: DemoStore) -> List[str]:
    """A store's labels; for a store saved without labels, those of its docs' entities in order
    of appearance (as from examples)."""
    in_docs = [e.label_ for doc in getattr(store, "docs", []) for e in doc.ents]
    return list(getattr(store, "labels", None) or dict.fromkeys(in_docs))


def _is_placeholder(doc: Doc) -> bool:
    """Whether ``doc`` is the example spaCy's ``Language.initialize`` makes up when it gets none."""
    return [t.text for t in doc] == ["x", "y", "z"] and not doc.ents


@Language.factory(
    "el4ner",
    assigns=["doc.ents", "doc.spans"],
    default_config=DEFAULT_CONFIG,
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_el4ner(
    nlp: Language,
    name: str,
    labels: List[str],
    label_descriptions: Dict[str, str],
    ensemble: Members,
    encoder: Embedder,
    store: Callable[[Vocab, Sequence[str], Embedder], DemoStore],
    retriever: Optional[Callable[[Embedder], Any]],
    extract: Dict[str, Any],
    classify: Dict[str, Any],
    validate: Optional[Dict[str, Any]],
    accept: Dict[str, Any],
    edges: Optional[BoundaryRule],
    max_unit_tokens: int,
    batch_size: int,
    spans_key: str,
    keep_existing_ents: bool,
    scorer: Optional[Callable],
) -> "EL4NER":
    """Construct the el4ner component. Cheap: models load on first use. Every setting is checked here."""
    return EL4NER(
        nlp.vocab,
        name,
        labels=labels,
        label_descriptions=label_descriptions,
        ensemble=ensemble,
        encoder=encoder,
        store=store(nlp.vocab, labels, encoder),
        retriever=None if retriever is None else retriever(encoder),
        extract=extract,
        classify=classify,
        validate=validate,
        accept=accept,
        edges=edges,
        max_unit_tokens=max_unit_tokens,
        batch_size=batch_size,
        spans_key=spans_key,
        keep_existing_ents=keep_existing_ents,
        scorer=scorer,
    )


class EL4NER(Pipe):
    """Named entity recognition by an ensemble of local LLMs with in-context learning (EL4NER).

    For each Doc: retrieve demonstrations, extract spans with every member (union), classify them
    with every member (vote), self-validate, then write ``doc.ents`` and every candidate to
    ``doc.spans[spans_key]`` (attrs: "scores", "details", "unaligned").
    """

    def __init__(
        self,
        vocab: Vocab,
        name: str = "el4ner",
        *,
        labels: Sequence[str],
        label_descriptions: Mapping[str, str],
        ensemble: Union[Members, Mapping[str, Model]],
        encoder: Embedder,
        store: DemoStore,
        retriever: Optional[Any] = None,
        extract: Optional[Mapping[str, Any]] = None,
        classify: Optional[Mapping[str, Any]] = None,
        validate: Optional[Mapping[str, Any]] = VALIDATE,
        accept: Optional[Mapping[str, Any]] = None,
        edges: Optional[BoundaryRule] = None,
        max_unit_tokens: int = 200,
        batch_size: int = 16,
        spans_key: str = "el4ner",
        keep_existing_ents: bool = True,
        scorer: Optional[Callable] = None,
    ) -> None:
        if isinstance(ensemble, Mapping) and not isinstance(ensemble, Members):
            # Python: a plain name -> model dict gets the default member settings (the first verifies)
            ensemble = Members({n: m if isinstance(m, Member) else Member(m, verifier=i == 0) for i, (n, m) in enumerate(ensemble.items())})
        if not isinstance(ensemble, Members):
            raise ValueError(Errors.E011.format(key="ensemble", rule="an @el4ner_members block (el4ner.Ensemble.v1 or el4ner.Members.v1)", value=ensemble))
        # Python construction without a classify block: the defaults, no type prior (a config's
        # default block brings its registered StoreKNNPrior)
        classify = dict({**CLASSIFY, "type_prior": None} if classify is None else classify)
        self.settings = build_settings(
            labels, label_descriptions, ensemble, extract or {}, classify, validate, accept or {}
        )
        integer("max_unit_tokens", max_unit_tokens, 8)
        integer("batch_size", batch_size, 1)
        if not isinstance(spans_key, str) or not spans_key:
            raise ValueError(Errors.E011.format(key="spans_key", rule="a non-empty string", value=spans_key))
        if not isinstance(keep_existing_ents, bool):
            raise ValueError(Errors.E011.format(key="keep_existing_ents", rule="true or false", value=keep_existing_ents))
        by = getattr(retriever, "pre_extraction_by", None)
        if isinstance(by, list) and set(by) - set(ensemble):
            raise ValueError(Errors.E018.format(key="retriever.pre_extraction_by", names=sorted(set(by) - set(ensemble)), members=list(ensemble)))
        self.vocab = vocab
        self.name = name
        self.ensemble = ensemble
        self.members: Dict[str, Model] = ensemble.models()
        self.runner = Runner(self.members)  # the one place where the stages' requests reach the models
        self.encoder = encoder
        self.retriever = retriever
        self.store = store
        self.type_prior = classify.get("type_prior")
        self.voting = classify.get("voting", CLASSIFY["voting"])
        accept = {**ACCEPT, **(accept or {})}
        self.entity_prior = accept["entity_prior"]
        self.min_confidence = float(accept["min_confidence"])
        self.validation_threshold = float(accept["validation_threshold"])
        self.validation = validate is not None
        self.validation_skip_above = float({**VALIDATE, **(validate or {})}["skip_above"])
        self.edges = edges
        self.max_unit_tokens = max_unit_tokens
        self.batch_size = batch_size
        self.spans_key = spans_key
        self.keep_existing_ents = keep_existing_ents
        self.scorer = scorer
        if not self.settings.labels:
            # a store loaded from its config `path` knows its labels: use them, as
            # initialize(store_path=...) does, instead of failing with "no labels"
            self.settings.labels = _store_labels(store)
            self.store.labels = list(self.settings.labels)
        # what the store held when built (a configured store `path`): initialize starts from it again
        self._initial_docs = list(store.docs)
        self.timings: Dict[str, float] = {}
        # below_quorum: spans left out by accept.extraction_quorum or accept.finder_sets
        self.stats: Dict[str, int] = {"docs": 0, "units": 0, "candidates": 0, "unaligned": 0, "rejected": 0, "trimmed": 0, "below_quorum": 0, "tokens_too_long": 0}

    # -- labels ----------------------------------------------------------------------------
    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.settings.labels)

    def add_label(self, label: str) -> int:
        """Add an entity label. RETURNS (int): 1 if it was new, else 0. RAISES ValueError: E011 for
        anything but a non-empty string."""
        if not isinstance(label, str) or not label.strip():
            raise ValueError(Errors.E011.format(key="label", rule="a non-empty string", value=label))
        if label in self.settings.labels:
            return 0
        self.settings.labels.append(label)
        self.store.labels = list(self.settings.labels)
        return 1

    # -- lifecycle ---------------------------------------------------------------------------
    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
        store_path: Optional[Union[str, Path]] = None,
    ) -> None:
        """Fill the demonstration store from the examples' reference annotations (and/or a saved
        store folder). Labels not given in the config are taken from the examples. Like every
        spaCy component, initializing again starts over: the store then holds what it held when
        the component was built (its configured `path`) plus these examples, never two copies
        (``add_demonstrations`` adds to it)."""
        if labels is not None and (isinstance(labels, str) or not isinstance(labels, (list, tuple))):
            raise ValueError(Errors.E011.format(key="labels", rule="a list of label strings", value=labels))
        self.store.reset(self._initial_docs)
        if labels:
            for label in labels:
                self.add_label(label)
        if store_path:
            loaded = DemoStore(self.vocab, self.settings.labels, self.encoder).from_disk(store_path)
            for label in _store_labels(loaded):
                self.add_label(label)
            self.store.labels = list(self.settings.labels)
            self.store.add(loaded.docs)
        if get_examples is not None:
            validate_get_examples(get_examples, "EL4NER.initialize")
            # nlp.initialize() without data passes spaCy's placeholder example ("x y z", nothing
            # annotated): it is not a demonstration
            refs = [eg.reference for eg in get_examples() if not _is_placeholder(eg.reference)]
            if not self.settings.labels:
                for ref in refs:
                    for ent in ref.ents:
                        self.add_label(ent.label_)
            self.store.labels = list(self.settings.labels)
            self.store.add(refs)
        if not self.settings.labels:
            raise ValueError(Errors.E019)
        logger.info("el4ner initialized: labels %s, %d demonstrations", self.settings.labels, len(self.store))

    def add_demonstrations(self, docs: Iterable[Doc]) -> int:
        """Add corrected Docs (e.g. from annotation) to the store. RETURNS (int): how many.
        RAISES (TypeError): For anything but labelled Docs. (ValueError): For an unknown label."""
        return self.store.add(docs)

    # -- processing --------------------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc], batch_size=1))

    def pipe(self, stream: Iterable[Doc], *, batch_size: Optional[int] = None) -> Iterator[Doc]:
        """Process Docs in batches: every stage sends the prompts of the whole batch to each
        member together."""
        if batch_size is not None:
            integer("batch_size", batch_size, 1)
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size or self.batch_size):
            try:
                self.predict_and_set(docs)
                yield from docs
            except Exception as err:  # noqa: BLE001 - spaCy's error-handler contract
                error_handler(self.name, self, docs, err)


    def predict(self, docs: List[Doc]) -> List[Unit]:
        """Run the stages: each is a step whose model requests the runner answers.
        RETURNS (List[Unit]): the units with their candidates."""
        if not self.settings.labels:
            raise ValueError(Errors.E019)
        self.store.require_loaded()
        for name in self.settings.span_members:
            model = self.members[name]
            if isinstance(model, SpacyNER):
                model.nlp  # noqa: B018  (loads it and checks its label map against the pipeline's labels)
                model.check_labels(self.settings.labels)
        units: List[Unit] = []
        for i, doc in enumerate(docs):
            too_long: List[Tuple[int, int]] = []
            units.extend(split_units(doc, i, self.max_unit_tokens, too_long))
            self.stats["tokens_too_long"] += len(too_long)
        if not units:
            return units
        run, names = self.runner.run, list(self.members)
        with self._timed("retrieve"):
            if self.retriever is not None:
                run(self.retriever.steps(docs, units, names, self.store, self.settings))
        with self._timed("extract"):
            self.stats["below_quorum"] += run(extract_steps(docs, units, names, self.settings))
        with self._timed("classify"):
            run(classify_steps(units, names, self.settings, self.voting, prior=self.type_prior, store=self.store))
        if self.edges is not None:
            with self._timed("edges"):
                self.stats["trimmed"] += self.edges(docs, units, self.store)
        if self.entity_prior is not None:
            with self._timed("entity_prior"):
                typed = [c for u in units for c in u.candidates.values() if c.label is not None]
                scores = self.entity_prior([c.text for c in typed], self.store)
                if scores is not None:
                    for cand, p in zip(typed, scores):
                        cand.entity_score = p ** self.entity_prior.weight
        if self.validation:
            with self._timed("validate"):
                # a span whose P(label) is below min_confidence is rejected whatever P(yes) is
                run(validate_steps(
                    units, self.ensemble.verifiers(), self.settings, skip_below=self.min_confidence, skip_above=self.validation_skip_above
                ))
        return units

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def predict_and_set(self, docs: List[Doc]) -> None:
        self.set_annotations(docs, self.predict(docs))

    def set_annotations(self, docs: List[Doc], units: List[Unit]) -> None:
        """Write ``doc.ents`` (non-overlapping, see ``align.select_entities``) and all candidates
        to ``doc.spans[spans_key]`` (``annotate.write_docs``)."""
        rules = Acceptance(self.validation_threshold, self.min_confidence)
        write_docs(docs, units, rules, self.spans_key, self.keep_existing_ents, self.stats)

    # -- serialization -----------------------------------------------------------------------
    def _cfg(self) -> Dict[str, Any]:
        return {"labels": self.settings.labels, "label_descriptions": self.settings.descriptions}

    def _set_cfg(self, cfg: Dict[str, Any]) -> None:
        for label in cfg.get("labels", []):
            self.add_label(label)
        self.settings.descriptions.update(cfg.get("label_descriptions", {}))

    def _check_savable(self) -> None:
        """RAISES ValueError: if the saved config.cfg could not be read back (see ``MemberBlocks``)."""
        dotted = [n for n in self.members if "." in n] if self.ensemble.names_are_sections else []
        if dotted:
            raise ValueError(Errors.E025.format(dotted=dotted, fixed=[_registry.config_key(n) for n in dotted]))

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        self._check_savable()
        serialize = {"cfg": lambda: srsly.json_dumps(self._cfg()), "store": self.store.to_bytes}
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "EL4NER":
        deserialize = {
            "cfg": lambda b: self._set_cfg(cfg_from_bytes(b)),
            "store": lambda b: self.store.from_bytes(b),
        }
        try:
            util.from_bytes(bytes_data, deserialize, exclude)
        except ValueError as err:
            if str(err).startswith("[E"):
                raise
            raise ValueError(Errors.E322.format(err=err)) from err
        self.store.labels = list(self.settings.labels)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        self._check_savable()
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self._cfg()),
            "store": lambda p: self.store.to_disk(p),
            "adapters": lambda p: save_adapters(self.members, p),
            "members": lambda p: save_spacy_members(self.members, p),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "EL4NER":
        deserialize = {
            "cfg": lambda p: self._set_cfg(read_cfg(p)),
            "store": lambda p: self.store.from_disk(p),
            "adapters": lambda p: load_adapters(self.members, p),
            "members": lambda p: load_spacy_members(self.members, p),
        }
        util.from_disk(path, deserialize, exclude)
        self.store.labels = list(self.settings.labels)
        return self

    def model_stats(self) -> Dict[str, Dict[str, int]]:
        """RETURNS: Each member's counters (calls, forward passes, tokens, cache hits)."""
        return {name: dict(getattr(m, "stats", {})) for name, m in self.members.items()}
