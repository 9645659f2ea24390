"""Registered, versioned functions for the swappable parts (usable from config.cfg).

Registries: ``el4ner_members`` (ensembles, members), ``el4ner_models`` (model backends), ``el4ner_encoders``,
``el4ner_retrievers``, ``el4ner_stores``, ``el4ner_caches``, ``el4ner_priors``, ``el4ner_boundaries``. A released ``vN`` never changes;
new behaviour gets ``vN+1``.
"""
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from spacy.util import registry
from spacy.vocab import Vocab

from .errors import Errors
from .models.cache import ResponseCache
from .models.hf import HFModel
from .models.llamacpp import LlamaCppModel
from .models.openai import OpenAIModel
from .members import Member, Members
from .models.protocol import Embedder, Model
from .models.spacy_ner import SpacyNER
from .settings import DEFAULT_MEMBERS
from .similarity import HFEncoder
from .stages.edges import StoreEdges
from .stages.prior import StoreEntityPrior, StoreKNNPrior
from .stages.retrieve import RandomRetriever, SentenceSimRetriever, SpanSimRetriever
from .store import DemoStore

for _name in ("el4ner_members", "el4ner_models", "el4ner_encoders", "el4ner_retrievers", "el4ner_stores", "el4ner_caches", "el4ner_priors", "el4ner_boundaries"):
    if not hasattr(registry, _name):
        registry.create(_name, entry_points=True)


@registry.el4ner_models("el4ner.HFModel.v1")  # type: ignore[attr-defined]
def make_hf_model(
    name: str,
    dtype: str = "fastest",
    device: Optional[str] = None,
    device_map: Optional[str] = None,
    batch_size: int = 8,
    max_context: int = 4096,
    trust_remote_code: bool = False,
    adapter: Optional[str] = None,
    cache: Optional[ResponseCache] = None,
) -> HFModel:
    """One transformers causal LM (embedded name, local folder or hub id). ``dtype = "fastest"``:
    bfloat16 where the device computes it natively (CUDA GPUs, CPUs with AVX512-BF16 or AMX),
    float32 on other CPUs, where emulated bf16 is several times slower."""
    return HFModel(
        name, dtype=dtype, device=device, device_map=device_map, batch_size=batch_size, max_context=max_context,
        trust_remote_code=trust_remote_code, adapter=adapter, cache=cache,
    )


@registry.el4ner_models("el4ner.LlamaCppModel.v1")  # type: ignore[attr-defined]
def make_llamacpp_model(
    name: str,
    n_ctx: int = 8192,
    n_batch: int = 512,
    n_threads: Optional[int] = None,
    parallel: int = 8,
    adapter: Optional[str] = None,
    cache: Optional[ResponseCache] = None,
) -> LlamaCppModel:
    """One GGUF model on llama.cpp (embedded name or .gguf file), optionally with a peft LoRA
    ``adapter`` folder (converted once to llama.cpp's LoRA format); see ``LlamaCppModel``."""
    return LlamaCppModel(name, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, parallel=parallel, adapter=adapter, cache=cache)


@registry.el4ner_models("el4ner.OpenAIModel.v1")  # type: ignore[attr-defined]
def make_openai_model(
    model: str,
    base_url: str = "http://127.0.0.1:8000/v1",
    api_key_env: Optional[str] = None,
    template_from: Optional[str] = None,
    scoring: str = "echo",
    timeout: float = 120.0,
    max_retries: int = 3,
    concurrency: int = 4,
    extra_body: Dict[str, Any] = {},
    cache: Optional[ResponseCache] = None,
) -> OpenAIModel:
    """A model behind an OpenAI-compatible server (vLLM, llama-cpp-python's server); see
    ``OpenAIModel``. The API key comes from the environment variable named ``api_key_env``."""
    return OpenAIModel(
        model, base_url=base_url, api_key_env=api_key_env, template_from=template_from, scoring=scoring,
        timeout=timeout, max_retries=max_retries, concurrency=concurrency, extra_body=extra_body, cache=cache,
    )


ENGINES = ("transformers", "llama.cpp")


@registry.el4ner_members("el4ner.Member.v1")  # type: ignore[attr-defined]
def make_member(
    model: Model,
    weight: float = 1.0,
    view: int = 0,
    prompt: str = "few-shot",
    votes: str = "extracted",
    constrained: bool = False,
    verifier: bool = False,
) -> Member:
    """One member: a model block (``@el4ner_models``) and what the pipeline does with it; see ``Member``."""
    return Member(model, weight=weight, view=view, prompt=prompt, votes=votes, constrained=constrained, verifier=verifier)


@registry.el4ner_members("el4ner.SpacyMember.v1")  # type: ignore[attr-defined]
def make_spacy_member(
    pipeline: str,
    label_map: Dict[str, str] = {},
    weight: float = 1.0,
    score: float = 0.9,
    spans_key: Optional[str] = None,
) -> Member:
    """A trained spaCy pipeline as a member (inside ``el4ner.Members.v1``): its entities (or the
    spancat group ``spans_key``) join the extraction union and vote in classification with the
    labels it predicted (``label_map``: its labels -> ours; unmapped ones ignored), at the
    probability its spancat gives or ``score``; it never verifies. ``python -m spacy_el4ner
    train-member`` trains one on a store."""
    return Member(SpacyNER(pipeline, label_map=label_map, score=score, spans_key=spans_key), weight=weight)


@registry.el4ner_members("el4ner.Ensemble.v1")  # type: ignore[attr-defined]
def make_ensemble(
    models: List[str] = DEFAULT_MEMBERS,
    engine: str = "transformers",
    dtype: str = "fastest",
    device: Optional[str] = None,
    device_map: Optional[str] = None,
    batch_size: int = 8,
    max_context: int = 4096,
    trust_remote_code: bool = False,
    cache: Optional[ResponseCache] = None,
    n_threads: Optional[int] = None,
) -> Members:
    """Members by model name (embedded names, local folders or hub ids) on one engine with shared
    settings, each with the default member settings; the first one verifies. Order matters: it breaks
    voting ties. ``engine``: "transformers" (``HFModel``) or "llama.cpp" (``LlamaCppModel``: the GGUF
    files as shipped; ``batch_size`` prompts decoded side by side in a key/value cache of
    ``2 * max_context`` tokens; ``dtype``, ``device``, ``device_map`` and ``trust_remote_code`` are
    transformers settings). ``n_threads``: llama.cpp's CPU threads (None: the cores this process may
    use). For per-member settings (weights, views, adapters, verifiers), use ``el4ner.Members.v1``."""
    if engine not in ENGINES:
        raise ValueError(Errors.E009.format(options=ENGINES, value=engine))
    if not models:
        raise ValueError(Errors.E012)
    if len(set(models)) != len(models):
        raise ValueError(Errors.E014.format(models=models))
    if engine == "llama.cpp" and (device not in (None, "cpu") or device_map is not None or dtype != "fastest" or trust_remote_code):
        raise ValueError(Errors.E010)
    out: Dict[str, Member] = {}
    for i, m in enumerate(models):
        if engine == "transformers":
            model: Model = make_hf_model(m, dtype, device, device_map, batch_size, max_context, trust_remote_code, None, cache)
        else:
            model = make_llamacpp_model(m, n_ctx=2 * max_context, n_threads=n_threads, parallel=batch_size, cache=cache)
        out[m] = Member(model, verifier=i == 0)
    return Members(out)


@registry.el4ner_members("el4ner.Members.v1")  # type: ignore[attr-defined]
def make_members(members: Dict[str, Any]) -> Members:
    """The members one by one: ``[...members.members.NAME]`` blocks of ``el4ner.Member.v1``, each
    with its model block and settings. NAME is a config section name: no ``.`` in it."""
    # (Dict[str, Any]: confection validates a dict of not yet resolved blocks against the value
    # type, so Dict[str, Member] rejects every nested block.)
    return Members(members, names_are_sections=True)


def config_key(name: str) -> str:
    """A member name that can be a config section name: ``.`` replaced by ``_``.

    name (str): The member name, e.g. ``qwen2.5-coder-0.5b-instruct+adapters/wnut17@1``.
    RETURNS (str): e.g. ``qwen2_5-coder-0_5b-instruct+adapters/wnut17@1``.
    """
    return name.replace(".", "_")


@registry.el4ner_encoders("el4ner.HFEncoder.v1")  # type: ignore[attr-defined]
def make_hf_encoder(name: str = "all-minilm-l6-v2", batch_size: int = 64, device: Optional[str] = None) -> Embedder:
    """Mean-pooled transformers sentence encoder for span embeddings."""
    return HFEncoder(name, batch_size=batch_size, device=device)


@registry.el4ner_retrievers("el4ner.SentenceSimRetriever.v1")  # type: ignore[attr-defined]
def make_sentencesim_retriever(k: int = 4, max_empty: Optional[int] = 1) -> Callable[[Embedder], SentenceSimRetriever]:
    """The k store docs most similar to the unit's whole text (cosine of sentence embeddings; no
    model call). ``max_empty``: at most this many of them without entities (None: no limit)."""
    return lambda embedder: SentenceSimRetriever(k, embedder, max_empty=max_empty)


@registry.el4ner_retrievers("el4ner.SpanSimRetriever.v1")  # type: ignore[attr-defined]
def make_spansim_retriever(
    k: int = 4,
    pre_extraction: str = "llm",
    pos_weights: Optional[Dict[str, float]] = None,
    max_empty: Optional[int] = 1,
    pre_extraction_by: Union[str, List[str]] = "first",
    pre_extraction_prefix: str = "[",
) -> Callable[[Embedder], SpanSimRetriever]:
    """Span-level sentence similarity (the EL4NER paper's retrieval): the store docs whose entity
    spans are most similar to spans pre-extracted from the unit, zero-shot ("llm", by the members of
    ``pre_extraction_by``: "first", "all" or a list of names, their answers starting with
    ``pre_extraction_prefix``), by a proper-noun heuristic ("heuristic") or both
    ("llm+heuristic"); ties and units without spans fall back to whole-text similarity."""

    def build(embedder: Embedder) -> SpanSimRetriever:
        return SpanSimRetriever(
            k, embedder, pre_extraction=pre_extraction, pos_weights=pos_weights, max_empty=max_empty,
            pre_extraction_by=pre_extraction_by, pre_extraction_prefix=pre_extraction_prefix,
        )

    return build


@registry.el4ner_retrievers("el4ner.RandomRetriever.v1")  # type: ignore[attr-defined]
def make_random_retriever(k: int = 4, seed: int = 0) -> Callable[[Embedder], RandomRetriever]:
    """k random demonstrations (ablation)."""
    return lambda embedder: RandomRetriever(k, seed)


@registry.el4ner_stores("el4ner.DemoStore.v1")  # type: ignore[attr-defined]
def make_demo_store(path: Optional[str] = None) -> Callable[[Vocab, Sequence[str], Embedder], DemoStore]:
    """A DocBin demonstration store; ``path`` loads a saved store folder at construction. A folder
    that does not exist is an error when the store is first used, unless ``from_disk`` (``spacy.load``
    of a saved pipeline, from any working directory) loaded the pipeline's own copy by then."""

    def build(vocab: Vocab, labels: Sequence[str], embedder: Embedder) -> DemoStore:
        store = DemoStore(vocab, labels, embedder)
        if path and Path(path).exists():
            store.from_disk(path)  # a broken store folder is an error right away
        elif path:
            store.missing_path = str(path)
        return store

    return build


@registry.el4ner_caches("el4ner.ResponseCache.v1")  # type: ignore[attr-defined]
def make_response_cache(path: str, max_entries: int = 1_000_000) -> ResponseCache:
    """On-disk response cache (SQLite), shared safely by several processes."""
    return ResponseCache(path, max_entries=max_entries)


@registry.el4ner_priors("el4ner.StoreKNNPrior.v1")  # type: ignore[attr-defined]
def make_store_knn_prior(k: int = 5, temperature: float = 0.05, mix: float = 0.3, weight: float = 1.0) -> StoreKNNPrior:
    """Type prior from the store's k nearest labelled spans (``weight = 0`` turns it off)."""
    return StoreKNNPrior(k=k, temperature=temperature, mix=mix, weight=weight)


@registry.el4ner_priors("el4ner.StoreEntityPrior.v1")  # type: ignore[attr-defined]
def make_store_entity_prior(
    k: int = 10, temperature: float = 0.05, max_negatives: int = 4000, weight: float = 1.0, seed: int = 0
) -> StoreEntityPrior:
    """P(entity) from the store's entity spans vs its non-entity n-grams (a confidence factor)."""
    return StoreEntityPrior(k=k, temperature=temperature, max_negatives=max_negatives, weight=weight, seed=seed)


@registry.el4ner_boundaries("el4ner.StoreEdges.v1")  # type: ignore[attr-defined]
def make_store_edges(
    max_rate: float = 0.05,
    min_count: int = 5,
    number_rate: float = 0.9,
    lower_case: bool = True,
    stop_words: bool = True,
    brackets: bool = True,
    numbers: bool = True,
) -> StoreEdges:
    """Adjust typed spans' edges to the conventions of the store's spans of their label
    (lower-case and stop words at the edges, brackets inside, a leading number)."""
    return StoreEdges(
        max_rate=max_rate, min_count=min_count, number_rate=number_rate,
        lower_case=lower_case, stop_words=stop_words, brackets=brackets, numbers=numbers,
    )
