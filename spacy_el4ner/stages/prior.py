"""A type prior for classification from the labelled spans of the demonstration store.

The members type each span from a prompt with a few demonstrations; the store holds many more
labelled spans than fit in a prompt. ``StoreKNNPrior`` looks up a candidate's nearest labelled
spans (cosine of the same span embeddings that retrieval uses) and turns their labels into a
distribution; classification multiplies each member's label distribution by it before the vote
(a product of experts, the prior to the power ``weight``). Measured in benchmarks/RESULTS.md
(#type-prior).
"""
import logging
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy

from ..errors import Errors
from ..ensemble import NONE_LABEL
from ..ty import EntityPrior, TypePrior  # noqa: F401  (the Protocols, importable from here too)

logger = logging.getLogger("spacy_el4ner")


def nearest(query: numpy.ndarray, keys: numpy.ndarray, k: int, temperature: float) -> List[Tuple[numpy.ndarray, numpy.ndarray]]:
    """The k nearest rows of ``keys`` for each row of ``query`` (rows of norm 1: cosine), with
    softmax weights of their similarities at ``temperature`` (summing to 1).

    RETURNS (List[Tuple[numpy.ndarray, numpy.ndarray]]): (indices, weights) per query row.
    """
    sims = query @ keys.T
    k = min(k, keys.shape[0])
    top = numpy.argpartition(-sims, k - 1, axis=1)[:, :k]
    out = []
    for row, idx in zip(sims, top):
        s = row[idx]
        w = numpy.exp((s - s.max()) / temperature)
        out.append((idx, w / w.sum()))
    return out


def _check(name: str, k: int, temperature: float, weight: float) -> None:
    if k < 1:
        raise ValueError(Errors.E024.format(part=name, key="k", rule=">= 1", value=k))
    if temperature <= 0:
        raise ValueError(Errors.E024.format(part=name, key="temperature", rule="> 0", value=temperature))
    if weight < 0:
        raise ValueError(Errors.E024.format(part=name, key="weight", rule=">= 0 (0 turns it off)", value=weight))


def _usable(texts: Sequence[str], store: "object", weight: float) -> bool:
    """Whether a prior has work to do and a store that can answer (labelled spans, an encoder)."""
    return bool(texts) and weight != 0 and getattr(store, "embedder", None) is not None and bool(getattr(store, "n_spans", 0))


class StoreKNNPrior:
    """k-nearest labelled spans of the store, softmax-weighted by similarity, mixed with uniform.

    k (int): Neighbours per span.
    temperature (float): Softmax temperature over the neighbours' cosine similarities (lower:
        the nearest neighbour counts more).
    mix (float): Share of the uniform distribution mixed in (0..1): no label gets less than
        ``mix / n_labels``, so a member's confident answer can still win against the store.
    weight (float): Exponent of the prior in the product with each member's distribution
        (0: no effect; 1: plain product, the default, best on dev for the default pair).
    """

    def __init__(self, k: int = 5, temperature: float = 0.05, mix: float = 0.3, weight: float = 1.0) -> None:
        _check("StoreKNNPrior", k, temperature, weight)
        if not 0.0 <= mix <= 1.0:
            raise ValueError(Errors.E024.format(part="StoreKNNPrior", key="mix", rule="between 0 and 1", value=mix))
        self.k = k
        self.temperature = temperature
        self.mix = mix
        self.weight = weight

    def __call__(self, texts: Sequence[str], store: "object", labels: Sequence[str]) -> Optional[List[Dict[str, float]]]:
        if not labels or not _usable(texts, store, self.weight):
            return None
        span_emb, _ = store.span_index()  # type: ignore[attr-defined]
        span_labels = store.span_labels()  # type: ignore[attr-defined]
        index = {label: i for i, label in enumerate(labels)}
        keep = [i for i, label in enumerate(span_labels) if label in index]
        if not keep:
            return None
        emb = span_emb[keep]
        y = numpy.asarray([index[span_labels[i]] for i in keep])
        query = numpy.asarray(store.embedder.embed(list(texts)), dtype="float32")  # type: ignore[attr-defined]
        out: List[Dict[str, float]] = []
        n = len(labels)
        for idx, w in nearest(query, emb, self.k, self.temperature):
            dist = numpy.bincount(y[idx], weights=w, minlength=n)
            dist = (1.0 - self.mix) * dist + self.mix / n
            out.append({label: float(dist[i]) for i, label in enumerate(labels)})
        return out


def apply_prior(probs: Mapping[str, float], prior: Optional[Mapping[str, float]], weight: float = 1.0) -> Dict[str, float]:
    """A member's distribution times the prior (to the power ``weight``), renormalised.
    "none" (not an entity) gets the uniform level 1/n_labels: the store says nothing about it.

    RETURNS (Dict[str, float]): The combined distribution over the same options.
    """
    if not prior or weight == 0:
        return dict(probs)
    labels = [o for o in probs if o != NONE_LABEL]
    neutral = 1.0 / max(len(labels), 1)
    raw = {o: p * (prior.get(o, neutral) if o != NONE_LABEL else neutral) ** weight for o, p in probs.items()}
    total = sum(raw.values())
    if total <= 0:
        return dict(probs)
    return {o: v / total for o, v in raw.items()}


class StoreEntityPrior:
    """P(entity) of a span from its nearest neighbours among the store's entity spans and
    non-entity n-grams of the store's texts: does the store call text like this an entity?

    Useful where the entity vocabulary recurs (one label, a closed domain: NCBI-disease dev 60
    F1 18.6 -> 38.6); harmful for novel, open-vocabulary names (WNUT-17 dev 60 49.6 -> 41.0,
    CrossNER politics dev 30 59.9 -> 54.1), so it is off by default. The component multiplies a
    candidate's confidence by ``P(entity) ** weight``.

    k (int): Neighbours per span.
    temperature (float): Softmax temperature over the neighbours' cosine similarities.
    max_negatives (int): Non-entity n-grams (1-3 tokens, no stop word at either edge, not
        overlapping an entity) sampled from the store's texts, with a fixed seed.
    weight (float): Exponent of P(entity) in the confidence (0: no effect).
    """

    def __init__(self, k: int = 10, temperature: float = 0.05, max_negatives: int = 4000, weight: float = 1.0, seed: int = 0) -> None:
        _check("StoreEntityPrior", k, temperature, weight)
        if max_negatives < 1:
            raise ValueError(Errors.E024.format(part="StoreEntityPrior", key="max_negatives", rule=">= 1", value=max_negatives))
        self.k = k
        self.temperature = temperature
        self.max_negatives = max_negatives
        self.weight = weight
        self.seed = seed
        self._key: Optional[tuple] = None
        self._keys: Optional[numpy.ndarray] = None  # entity spans, then negatives
        self._is_ent: Optional[numpy.ndarray] = None

    def negatives(self, store: "object") -> List[str]:
        """RETURNS (List[str]): The sampled non-entity n-grams of the store's texts."""
        import random

        seen: Dict[str, None] = {}
        for doc in store.docs:  # type: ignore[attr-defined]
            in_ent = {i for e in doc.ents for i in range(e.start, e.end)}
            for n in (1, 2, 3):
                for i in range(len(doc) - n + 1):
                    toks = doc[i : i + n]
                    if any(j in in_ent for j in range(i, i + n)):
                        continue
                    if not all(t.is_alpha or t.is_digit for t in toks) or toks[0].is_stop or toks[-1].is_stop:
                        continue
                    seen.setdefault(toks.text)
        texts = sorted(seen)
        random.Random(self.seed).shuffle(texts)
        return texts[: self.max_negatives]

    def __call__(self, texts: Sequence[str], store: "object") -> Optional[List[float]]:
        """RETURNS: P(entity) per text, or None when the store cannot say (no spans, no encoder)."""
        if not _usable(texts, store, self.weight):
            return None
        pos, _ = store.span_index()  # type: ignore[attr-defined]
        key = (id(store), len(store.docs), pos.shape[0])  # type: ignore[attr-defined]
        if self._key != key or self._keys is None or self._is_ent is None:
            # once per store state: the negatives' embeddings, stacked under the entity spans'
            neg_texts = self.negatives(store)
            neg = numpy.asarray(store.embedder.embed(neg_texts), dtype="float32").reshape(len(neg_texts), pos.shape[1])  # type: ignore[attr-defined]
            self._keys = numpy.vstack([pos, neg])
            self._is_ent = numpy.concatenate([numpy.ones(pos.shape[0]), numpy.zeros(neg.shape[0])])
            self._key = key
            logger.debug("entity prior: %d entity spans, %d non-entity n-grams", pos.shape[0], len(neg_texts))
        query = numpy.asarray(store.embedder.embed(list(texts)), dtype="float32")  # type: ignore[attr-defined]
        is_ent = self._is_ent
        return [float((w * is_ent[idx]).sum()) for idx, w in nearest(query, self._keys, self.k, self.temperature)]
