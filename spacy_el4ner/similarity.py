"""Span embeddings (a sentence encoder) and the span-level sentence similarity SpanSim."""
import logging
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy

from .errors import Errors
from .models import zoo
from .models.protocol import ModelLoadError

logger = logging.getLogger("spacy_el4ner")

# Part-of-speech weights w(s): proper nouns weigh most (Universal POS, and Penn tags via pos_).
DEFAULT_POS_WEIGHTS: Dict[str, float] = {
    "PROPN": 1.0,
    "NOUN": 0.6,
    "NUM": 0.4,
    "ADJ": 0.3,
    "X": 0.3,
    "SYM": 0.2,
    "VERB": 0.2,
}
DEFAULT_OTHER_WEIGHT = 0.1


class HFEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a transformers encoder (lazy load).

    name (str): Embedded short name ("all-minilm-l6-v2") or a local folder.
    batch_size (int): Texts per forward pass.
    """

    def __init__(self, name: str = "all-minilm-l6-v2", batch_size: int = 64, device: Optional[str] = None) -> None:
        zoo.check_name(name, what="encoder")
        self.name = name
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._memo: Dict[str, numpy.ndarray] = {}

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        path = str(zoo.ensure(self.name)) if self.name in zoo.ZOO else self.name
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:  # ValueError: HFValidationError for a missing absolute path
            raise ModelLoadError(Errors.E134.format(name=self.name, err=err)) from err
        if self.device:
            self._model.to(self.device)
        self._model.eval()

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        """RETURNS (numpy.ndarray): (len(texts), dim) float32, rows of norm 1."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if todo:
            self._load()
            import torch

            for i in range(0, len(todo), self.batch_size):
                chunk = todo[i : i + self.batch_size]
                enc = self._tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt")
                enc = {k: v.to(self._model.device) for k, v in enc.items()}
                with torch.no_grad():
                    hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
                for text, vec in zip(chunk, pooled):
                    self._memo[text] = vec.astype("float32")
            if len(self._memo) > 200_000:
                self._memo.clear()
        if not texts:
            return numpy.zeros((0, self.dim), dtype="float32")
        return numpy.stack([self._memo[t] for t in texts])

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)


def span_weight(pos_tags: Sequence[str], weights: Mapping[str, float], other: float = DEFAULT_OTHER_WEIGHT) -> float:
    """w(s): the largest weight of the span's tokens' coarse POS tags (1.0 when no tags)."""
    tags = [t for t in pos_tags if t]
    if not tags:
        return 1.0
    return max(weights.get(t, other) for t in tags)


def span_sim(query: numpy.ndarray, weights: Sequence[float], cand: numpy.ndarray) -> float:
    """SpanSim(S, Sc) = sum_s w(s) * max_c cos(s, c) / sum_s w(s).

    query: (n, d) unit-norm embeddings of the input's spans S.
    weights: n weights w(s).
    cand: (m, d) unit-norm embeddings of a demonstration's spans Sc.
    RETURNS (float): The similarity; 0.0 when either side has no spans or the weights sum to 0.
    """
    w = numpy.asarray(weights, dtype="float64")
    if query.shape[0] == 0 or cand.shape[0] == 0 or w.sum() <= 0:
        return 0.0
    best = (query @ cand.T).max(axis=1)
    return float((w * best).sum() / w.sum())


def span_sim_many(query: numpy.ndarray, weights: Sequence[float], cands: numpy.ndarray, owners: numpy.ndarray, n_docs: int) -> numpy.ndarray:
    """SpanSim of one query against every store doc at once.

    cands: (M, d) embeddings of all store spans; owners: (M,) index of the doc each belongs to.
    RETURNS (numpy.ndarray): (n_docs,) similarities (0 for docs without spans).
    """
    w = numpy.asarray(weights, dtype="float64")
    out = numpy.zeros(n_docs, dtype="float64")
    if query.shape[0] == 0 or cands.shape[0] == 0 or w.sum() <= 0:
        return out
    sims = query @ cands.T  # (n, M)
    best = numpy.full((query.shape[0], n_docs), -numpy.inf)
    for j in range(query.shape[0]):
        numpy.maximum.at(best[j], owners, sims[j])
    has = numpy.isfinite(best[0])
    best[:, ~has] = 0.0
    out = (w[:, None] * best).sum(0) / w.sum()
    out[~has] = 0.0
    return out
