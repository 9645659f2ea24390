"""The ``el4ner`` pipeline component: configuration, initialize, pipe, serialization."""
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_get_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from spacy import util

from . import registry as _registry  # noqa: F401  (registers the functions)
from .align import select_entities
from .ensemble import VOTING_RULES, acceptance
from .errors import Errors
from .models.adapters import load_adapters, save_adapters
from .models.protocol import Embedder, Model
from .sentences import split_units
from .stages import Settings, classify, extract, refine, validate
from .stages.common import STAGES
from .stages.edges import BoundaryRule
from .stages.prior import EntityPrior, TypePrior
from .store import DemoStore
from .types import Unit

logger = logging.getLogger("spacy_el4ner")

DEFAULT_CONFIG: Dict[str, Any] = {
    "labels": [],
    "label_descriptions": {},
    "members": {
        "@el4ner_models": "el4ner.Ensemble.v2",
        "models": list(_registry.DEFAULT_MEMBERS),
        "dtype": "fastest",
        "device": None,
        "device_map": None,
        "batch_size": 8,
        "max_context": 4096,
        "trust_remote_code": False,
        "cache": None,
        "share_prefix": True,
    },
    "encoder": {"@el4ner_encoders": "el4ner.HFEncoder.v1", "name": "all-minilm-l6-v2"},
    "retriever": {
        "@el4ner_retrievers": "el4ner.SpanSimRetriever.v3", "k": 4, "pre_extraction": "llm", "max_empty": 1,
        "pre_extraction_by": "first",
    },
    "store": {"@el4ner_stores": "el4ner.DemoStore.v1", "path": None},
    "retrieval": True,
    "type_prior": {"@el4ner_priors": "el4ner.StoreKNNPrior.v1", "k": 5, "temperature": 0.05, "mix": 0.3, "weight": 1.0},
    "entity_prior": None,
    "boundary_rule": {
        "@el4ner_boundaries": "el4ner.StoreEdges.v1", "max_rate": 0.05, "min_count": 5, "number_rate": 0.9,
        "lower_case": True, "stop_words": True, "brackets": True, "numbers": True,
    },
    "member_weights": {},
    "extraction_quorum": 0.0,
    "accept_finder_sets": [],
    "member_demo_views": {},
    "voting": "majority",
    "lazy_voting": True,
    "none_option": False,
    "validation": True,
    "verifier": "first",
    "validation_threshold": 0.0,
    "validation_skip_above": 0.9,
    "min_confidence": 0.3,
    "refine_boundaries": False,
    "refine_margin": 0.0,
    "max_new_tokens": 64,
    "stage_demos": {"classify": 3, "validate": 1},
    "constrained_extraction": False,
    "finetune_prompt_members": [],
    "finetune_prompt_votes": True,
    "max_unit_tokens": 200,
    "batch_size": 16,
    "templates": {
        "extract": "extract.v1.jinja",
        "classify": "classify.v2.jinja",
        "validate": "validate.v1.jinja",
        "boundary": "boundary.v1.jinja",
    },
    "prompt_dir": None,
    "spans_key": "el4ner",
    "keep_existing_ents": True,
    "scorer": {"@scorers": "spacy.ner_scorer.v1"},
}


def _store_labels(store: DemoStore) -> List[str]:
    """A store's labels; for a store saved without labels, those of its docs' entities in order
    of appearance (as from examples)."""
    in_docs = [e.label_ for doc in getattr(store, "docs", []) for e in doc.ents]
    return list(getattr(store, "labels", None) or dict.fromkeys(in_docs))


def _read_cfg(path: Path) -> Dict[str, Any]:
    """The component's saved settings (its ``cfg`` file), or an error that names the file."""
    try:
        cfg = srsly.read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(Errors.E303.format(path=path, err=err)) from err
    if not isinstance(cfg, dict):
        raise ValueError(Errors.E304.format(path=path, type=type(cfg).__name__))
    return cfg


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
    members: Dict[str, Model],
    encoder: Embedder,
    retriever: Callable[[Embedder], Any],
    store: Callable[[Vocab, Sequence[str], Embedder], DemoStore],
    retrieval: bool,
    type_prior: Optional[TypePrior],
    entity_prior: Optional[EntityPrior],
    boundary_rule: Optional[BoundaryRule],
    member_weights: Dict[str, float],
    extraction_quorum: float,
    accept_finder_sets: List[List[str]],
    member_demo_views: Dict[str, int],
    voting: str,
    lazy_voting: bool,
    none_option: bool,
    validation: bool,
    verifier: str,
    validation_threshold: float,
    validation_skip_above: float,
    min_confidence: float,
    refine_boundaries: bool,
    refine_margin: float,
    max_new_tokens: int,
    stage_demos: Dict[str, int],
    constrained_extraction: Union[bool, List[str]],
    finetune_prompt_members: List[str],
    finetune_prompt_votes: Union[bool, str],
    max_unit_tokens: int,
    batch_size: int,
    templates: Dict[str, str],
    prompt_dir: Optional[str],
    spans_key: str,
    keep_existing_ents: bool,
    scorer: Optional[Callable],
) -> "EL4NER":
    """Construct the el4ner component. Cheap: models load on first use."""
    return EL4NER(
        nlp.vocab,
        name,
        labels=labels,
        label_descriptions=label_descriptions,
        members=members,
        encoder=encoder,
        retriever=retriever(encoder),
        store=store(nlp.vocab, labels, encoder),
        retrieval=retrieval,
        type_prior=type_prior,
        entity_prior=entity_prior,
        boundary_rule=boundary_rule,
        member_weights=member_weights,
        extraction_quorum=extraction_quorum,
        accept_finder_sets=accept_finder_sets,
        member_demo_views=member_demo_views,
        voting=voting,
        lazy_voting=lazy_voting,
        none_option=none_option,
        validation=validation,
        verifier=verifier,
        validation_threshold=validation_threshold,
        validation_skip_above=validation_skip_above,
        min_confidence=min_confidence,
        refine_boundaries=refine_boundaries,
        refine_margin=refine_margin,
        max_new_tokens=max_new_tokens,
        stage_demos=stage_demos,
        constrained_extraction=constrained_extraction,
        finetune_prompt_members=finetune_prompt_members,
        finetune_prompt_votes=finetune_prompt_votes,
        max_unit_tokens=max_unit_tokens,
        batch_size=batch_size,
        templates=templates,
        prompt_dir=prompt_dir,
        spans_key=spans_key,
        keep_existing_ents=keep_existing_ents,
        scorer=scorer,
    )


class EL4NER(Pipe):
    """Named entity recognition by an ensemble of local LLMs with in-context learning (EL4NER).

    For each Doc: retrieve demonstrations (SpanSim), extract spans with every member (union),
    classify them with every member (vote), self-validate, then write ``doc.ents`` and every
    candidate to ``doc.spans[spans_key]`` (attrs: "scores", "details").
    """

    def __init__(
        self,
        vocab: Vocab,
        name: str = "el4ner",
        *,
        labels: Sequence[str],
        label_descriptions: Mapping[str, str],
        members: Mapping[str, Model],
        encoder: Embedder,
        retriever: Any,
        store: DemoStore,
        retrieval: bool = True,
        type_prior: Optional[TypePrior] = None,
        entity_prior: Optional[EntityPrior] = None,
        boundary_rule: Optional[BoundaryRule] = None,
        member_weights: Optional[Mapping[str, float]] = None,
        extraction_quorum: float = 0.0,
        accept_finder_sets: Optional[Sequence[Sequence[str]]] = None,
        member_demo_views: Optional[Mapping[str, int]] = None,
        voting: str = "majority",
        lazy_voting: bool = True,
        none_option: bool = False,
        validation: bool = True,
        verifier: str = "first",
        validation_threshold: float = 0.0,
        validation_skip_above: float = 0.9,
        min_confidence: float = 0.3,
        refine_boundaries: bool = False,
        refine_margin: float = 0.0,
        max_new_tokens: int = 64,
        stage_demos: Optional[Mapping[str, int]] = None,
        constrained_extraction: Union[bool, Sequence[str]] = False,
        finetune_prompt_members: Sequence[str] = (),
        finetune_prompt_votes: Union[bool, str] = True,
        max_unit_tokens: int = 200,
        batch_size: int = 16,
        templates: Optional[Mapping[str, str]] = None,
        prompt_dir: Optional[str] = None,
        spans_key: str = "el4ner",
        keep_existing_ents: bool = True,
        scorer: Optional[Callable] = None,
    ) -> None:
        if voting not in VOTING_RULES:
            raise ValueError(f"el4ner: voting must be one of {VOTING_RULES}, not '{voting}'")
        if not members:
            raise ValueError("el4ner: at least one member model is needed")
        if verifier not in ("first", "all") and verifier not in members:
            raise ValueError(f"el4ner: verifier must be 'first', 'all' or a member name ({list(members)}), not '{verifier}'")
        if not 0.0 <= validation_threshold <= 1.0:
            raise ValueError("el4ner: validation_threshold must be between 0 and 1")
        if not 0.0 <= validation_skip_above <= 1.0:
            raise ValueError("el4ner: validation_skip_above must be between 0 and 1 (1: validate every typed span)")
        if finetune_prompt_votes not in (True, False, "scored"):
            raise ValueError(f"el4ner: finetune_prompt_votes must be true, false or \"scored\", not {finetune_prompt_votes!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("el4ner: min_confidence must be between 0 and 1")
        if refine_margin < 0.0:
            raise ValueError("el4ner: refine_margin (log-probability, nats) must be >= 0")
        if max_unit_tokens < 8:
            raise ValueError("el4ner: max_unit_tokens must be at least 8")
        unknown_members = set(member_weights or {}) - set(members)
        if unknown_members:
            raise ValueError(f"el4ner: member_weights name models that are not members: {sorted(unknown_members)}; members: {list(members)}")
        if extraction_quorum < 0:
            raise ValueError("el4ner: extraction_quorum must be >= 0 (0: the union of the members' spans)")
        finder_sets: List[List[str]] = []
        for finder_set in accept_finder_sets or []:
            if isinstance(finder_set, str) or not finder_set or set(finder_set) - set(members):
                raise ValueError(
                    f"el4ner: accept_finder_sets is a list of lists of member names (e.g. [[\"a\"], [\"a\", \"b\"]]); "
                    f"got {finder_set!r}; members: {list(members)}. `python -m spacy_el4ner calibrate` writes one."
                )
            finder_sets.append(list(finder_set))
        constrained: Union[bool, List[str]]
        if isinstance(constrained_extraction, bool):
            constrained = constrained_extraction
        elif isinstance(constrained_extraction, str) or set(constrained_extraction) - set(members):
            raise ValueError(
                f"el4ner: constrained_extraction is true, false or a list of member names (e.g. a base "
                f"model that does not follow the JSON format on its own); got {constrained_extraction!r}; "
                f"members: {list(members)}"
            )
        else:
            constrained = list(constrained_extraction)
        if isinstance(finetune_prompt_members, str) or set(finetune_prompt_members) - set(members):
            raise ValueError(
                f"el4ner: finetune_prompt_members lists the members (with a CLLMFS adapter) that extract "
                f"with the fine-tuning prompt; got {finetune_prompt_members!r}; members: {list(members)}"
            )
        views = dict(member_demo_views or {})
        bad_views = {k: v for k, v in views.items() if k not in members or isinstance(v, bool) or not isinstance(v, int) or v < 0}
        if bad_views:
            raise ValueError(
                f"el4ner: member_demo_views maps member names ({list(members)}) to a demonstration view "
                f"(0: the k most similar store docs, 1: the next k, ...), got {bad_views}"
            )
        bad = {k: v for k, v in (stage_demos or {}).items() if k not in STAGES or not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(
                f"el4ner: stage_demos maps a stage ({', '.join(STAGES)}) to a number of demonstrations >= 0, got {bad}"
            )
        for key, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(Errors.E002.format(key=key, value=value))
        unknown = set(label_descriptions) - set(labels)
        if labels and unknown:
            raise ValueError(f"el4ner: label_descriptions name labels not in `labels`: {sorted(unknown)}")
        self.vocab = vocab
        self.name = name
        self.members = dict(members)
        self._names_are_sections = bool(getattr(members, "names_are_sections", False))
        self.encoder = encoder
        self.retriever = retriever
        self.store = store
        self.retrieval = retrieval
        self.type_prior = type_prior
        self.entity_prior = entity_prior
        self.boundary_rule = boundary_rule
        self.voting = voting
        self.lazy_voting = lazy_voting
        self.validation = validation
        self.verifier = verifier
        self.validation_threshold = validation_threshold
        self.validation_skip_above = validation_skip_above
        self.min_confidence = min_confidence
        self.refine_boundaries = refine_boundaries
        self.refine_margin = refine_margin
        self.max_unit_tokens = max_unit_tokens
        self.batch_size = batch_size
        self.spans_key = spans_key
        self.keep_existing_ents = keep_existing_ents
        self.scorer = scorer
        self.settings = Settings(
            labels=list(labels),
            descriptions=dict(label_descriptions),
            templates=dict(templates or Settings(labels=[]).templates),
            prompt_dir=prompt_dir or "",
            max_new_tokens=max_new_tokens,
            stage_demos=dict(DEFAULT_CONFIG["stage_demos"] if stage_demos is None else stage_demos),
            none_option=none_option,
            constrained=constrained,
            finetune_prompt=list(finetune_prompt_members),
            finetune_votes=finetune_prompt_votes,
            member_weights=dict(member_weights or {}),
            extraction_quorum=extraction_quorum,
            accept_finder_sets=finder_sets,
            member_demo_views=views,
        )
        if not self.settings.labels:
            # a store loaded from its config `path` knows its labels: use them, as
            # initialize(store_path=...) does, instead of failing with "no labels"
            self.settings.labels = _store_labels(store)
            self.store.labels = list(self.settings.labels)
        # what the store held when built (a configured store `path`): initialize starts from it again
        self._initial_docs = list(store.docs)
        self.timings: Dict[str, float] = {}
        # below_quorum: spans left out by extraction_quorum or accept_finder_sets (the name predates the latter)
        self.stats: Dict[str, int] = {"docs": 0, "units": 0, "candidates": 0, "unaligned": 0, "rejected": 0, "refined": 0, "trimmed": 0, "below_quorum": 0, "tokens_too_long": 0}

    # -- labels ----------------------------------------------------------------------------
    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.settings.labels)

    def add_label(self, label: str) -> int:
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
            raise ValueError(
                "el4ner: no labels. Set `labels` in the component config, or pass examples with "
                "entities to nlp.initialize()."
            )
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
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size or self.batch_size):
            try:
                self.predict_and_set(docs)
                yield from docs
            except Exception as err:  # noqa: BLE001 - spaCy's error-handler contract
                error_handler(self.name, self, docs, err)

    def _verifiers(self) -> Dict[str, Model]:
        if self.verifier == "all":
            return dict(self.members)
        name = next(iter(self.members)) if self.verifier == "first" else self.verifier
        return {name: self.members[name]}

    def predict(self, docs: List[Doc]) -> List[Unit]:
        """Run the four stages. RETURNS (List[Unit]): the units with their candidates."""
        if not self.settings.labels:
            raise ValueError("el4ner: no labels; call nlp.initialize() or set `labels` in the config")
        self.store.require_loaded()
        units: List[Unit] = []
        for i, doc in enumerate(docs):
            too_long: List[Tuple[int, int]] = []
            units.extend(split_units(doc, i, self.max_unit_tokens, too_long))
            self.stats["tokens_too_long"] += len(too_long)
        if not units:
            return units
        with self._timed("retrieve"):
            if self.retrieval and self.retriever is not None:
                self.retriever(docs, units, self.members, self.store, self.settings)
        with self._timed("extract"):
            self.stats["below_quorum"] += extract(docs, units, self.members, self.settings)
        with self._timed("classify"):
            classify(
                units, self.members, self.settings, self.voting, lazy=self.lazy_voting, prior=self.type_prior, store=self.store
            )
        if self.boundary_rule is not None:
            with self._timed("boundaries"):
                self.stats["trimmed"] += self.boundary_rule(docs, units, self.store)
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
                validate(
                    units, self._verifiers(), self.settings, skip_below=self.min_confidence, skip_above=self.validation_skip_above
                )
            if self.refine_boundaries:
                with self._timed("refine"):
                    self.stats["refined"] += refine(docs, units, self._verifiers(), self.settings, self.refine_margin)
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
        to ``doc.spans[spans_key]``."""
        per_doc: Dict[int, List[Unit]] = {}
        for unit in units:
            per_doc.setdefault(unit.doc_index, []).append(unit)
        for i, doc in enumerate(docs):
            self.stats["docs"] += 1
            scored: List[Tuple[int, int, str, float]] = []
            group_spans: List[Span] = []
            details: List[Dict[str, Any]] = []
            scores: List[float] = []
            unaligned: List[List[str]] = []
            for unit in per_doc.get(i, []):
                self.stats["units"] += 1
                unaligned.extend([m, s] for m, s in unit.unaligned)
                self.stats["unaligned"] += len(unit.unaligned)
                for cand in sorted(unit.candidates.values(), key=lambda c: c.key):
                    span = doc.char_span(unit.offset + cand.start, unit.offset + cand.end)
                    if span is None:
                        continue
                    self.stats["candidates"] += 1
                    cand.confidence, accepted = acceptance(
                        cand.label, cand.label_score, cand.validation, self.validation_threshold, self.min_confidence,
                        cand.entity_score,
                    )
                    if cand.label is not None and not accepted:
                        self.stats["rejected"] += 1
                    if accepted:
                        scored.append((span.start, span.end, cand.label, cand.confidence))
                    group_spans.append(Span(doc, span.start, span.end, label=cand.label or "none"))
                    scores.append(round(cand.confidence, 4))
                    details.append(
                        {
                            "text": span.text,
                            "label": cand.label,
                            "accepted": accepted,
                            "extracted_by": sorted(cand.extracted_by),
                            # fine-tuning-prompt members: the labels they extracted it under
                            "extracted_as": {m: sorted(ls) for m, ls in sorted(cand.extracted_as.items())},
                            "votes": dict(cand.votes),
                            "label_probs": {m: {k: round(v, 4) for k, v in p.items()} for m, p in cand.label_probs.items()},
                            "type_prior": None if cand.type_prior is None else {k: round(v, 4) for k, v in cand.type_prior.items()},
                            "label_score": round(cand.label_score, 4),
                            "validation": None if cand.validation is None else round(cand.validation, 4),
                            "entity_score": None if cand.entity_score is None else round(cand.entity_score, 4),
                            "confidence": round(cand.confidence, 4),
                            "refined_from": cand.refined_from,
                        }
                    )
            doc.ents = select_entities(doc, scored, keep_existing=self.keep_existing_ents)
            group = SpanGroup(doc, name=self.spans_key, spans=group_spans)
            group.attrs["scores"] = scores
            group.attrs["details"] = details
            group.attrs["unaligned"] = unaligned
            doc.spans[self.spans_key] = group

    # -- serialization -----------------------------------------------------------------------
    def _cfg(self) -> Dict[str, Any]:
        return {"labels": self.settings.labels, "label_descriptions": self.settings.descriptions}

    def _set_cfg(self, cfg: Dict[str, Any]) -> None:
        for label in cfg.get("labels", []):
            self.add_label(label)
        self.settings.descriptions.update(cfg.get("label_descriptions", {}))

    def _check_savable(self) -> None:
        """RAISES ValueError: if the saved config.cfg could not be read back (see ``MemberBlocks``)."""
        dotted = [n for n in self.members if "." in n] if self._names_are_sections else []
        if dotted:
            raise ValueError(
                f"el4ner: members {dotted} are el4ner.EnsembleOf.v1 keys with a '.'. The saved config.cfg "
                "would read them as nested sections, and spacy.load could not load the pipeline. Name them "
                f"without '.' (e.g. {[_registry.config_key(n) for n in dotted]}) wherever members are named: the "
                "member blocks, member_weights, member_demo_views, accept_finder_sets, verifier, "
                "pre_extraction_by. `evaluate --export-config` writes such a config."
            )

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        self._check_savable()
        serialize = {"cfg": lambda: srsly.json_dumps(self._cfg()), "store": self.store.to_bytes}
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "EL4NER":
        deserialize = {
            "cfg": lambda b: self._set_cfg(srsly.json_loads(b)),
            "store": lambda b: self.store.from_bytes(b),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        self.store.labels = list(self.settings.labels)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        self._check_savable()
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self._cfg()),
            "store": lambda p: self.store.to_disk(p),
            "adapters": lambda p: save_adapters(self.members, p),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "EL4NER":
        deserialize = {
            "cfg": lambda p: self._set_cfg(_read_cfg(p)),
            "store": lambda p: self.store.from_disk(p),
            "adapters": lambda p: load_adapters(self.members, p),
        }
        util.from_disk(path, deserialize, exclude)
        self.store.labels = list(self.settings.labels)
        return self

    def model_stats(self) -> Dict[str, Dict[str, int]]:
        """RETURNS: Each member's counters (calls, forward passes, tokens, cache hits)."""
        return {name: dict(getattr(m, "stats", {})) for name, m in self.members.items()}
