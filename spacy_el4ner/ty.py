"""The small contracts between the parts, in one place.

Stages do not call models: each is a *step*, a generator that yields lists of requests
(``Generate`` / ``Score`` for language models, ``Predict`` for spaCy pipelines; one per member asked) and receives their answers in the same order,
then returns its result. ``runner.Runner`` is the one place that makes model calls; a stage can
be driven with plain answers in tests (``runner.drive``). The swappable parts that are not models
(retrievers, priors, edge rules) are the Protocols below; models and encoders are in
``models.protocol`` (re-exported here).
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Generator, List, Optional, Protocol, Sequence, Tuple, TypeVar, Union, runtime_checkable

from spacy.tokens import Doc

from .models.protocol import Embedder, Model, Prompt
from .types import Unit

if TYPE_CHECKING:
    from .stages.common import Settings
    from .store import DemoStore

R = TypeVar("R")


@dataclass(frozen=True)
class Generate:
    """Ask ``member`` for one greedy answer per prompt (``Model.generate``)."""

    member: str
    prompts: List[Prompt]
    max_new_tokens: int
    stop: Tuple[str, ...] = ()
    answer_prefix: str = ""
    constrain_to: Optional[List[str]] = None
    separators: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Score:
    """Ask ``member`` for the log-probability of each continuation of each prompt (``Model.score``)."""

    member: str
    prompts: List[Prompt]
    continuations: List[List[str]]


@dataclass(frozen=True)
class Predict:
    """Ask ``member`` (a spaCy pipeline, ``models.spacy_ner.SpacyNER``) for its spans in each text."""

    member: str
    texts: List[str]

    @property
    def prompts(self) -> List[str]:
        return self.texts


Request = Union[Generate, Score, Predict]
# a Generate request's answer: one string per prompt; a Score request's: one list of floats per
# prompt; a Predict request's: per text, (start char, end char, label, probability) spans
Answer = Union[List[str], List[List[float]], List[List[Tuple[int, int, str, float]]]]
# a stage: yields the requests of one round, receives their answers, returns its result
Step = Generator[List[Request], List[Answer], R]


class Retriever(Protocol):
    """Sets ``unit.demos`` (and ``unit.demo_views`` when ``settings.demo_views`` > 1) for every unit;
    a retriever that asks the members (SpanSim's zero-shot pre-extraction) does it in its step."""

    def steps(self, docs: List[Doc], units: List[Unit], members: Sequence[str], store: "DemoStore", settings: "Settings") -> Step[None]: ...


@runtime_checkable
class TypePrior(Protocol):
    """A distribution over the labels for each span text, from the store."""

    weight: float

    def __call__(self, texts: Sequence[str], store: "object", labels: Sequence[str]) -> Optional[List[Dict[str, float]]]:
        """RETURNS: one label -> probability dict per text (summing to 1 over ``labels``), or None
        when the store cannot give one (no labelled spans, no encoder)."""
        ...


@runtime_checkable
class EntityPrior(Protocol):
    """P(entity) for each span text, from the store."""

    weight: float

    def __call__(self, texts: Sequence[str], store: "object") -> Optional[List[float]]:
        """RETURNS: P(entity) per text, or None when the store cannot give one."""
        ...


@runtime_checkable
class BoundaryRule(Protocol):
    """Adjusts the edges of typed candidates in place, from the store; no model call."""

    def __call__(self, docs: List[Doc], units: List[Unit], store: "object") -> int:
        """RETURNS (int): How many candidates were changed."""
        ...


__all__ = [
    "Answer", "BoundaryRule", "Embedder", "EntityPrior", "Generate", "Model", "Predict", "Prompt", "Request", "Retriever", "Score",
    "Step", "TypePrior",
]
