"""The small contract between the stages and a model backend."""
from typing import Dict, List, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

# A prompt is a user message, or chat messages ({"role": system|user|assistant, "content": ...}).
Prompt = Union[str, Sequence[Mapping[str, str]]]


def as_messages(prompt: Prompt) -> List[Dict[str, str]]:
    """RETURNS: The prompt as a list of chat messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


@runtime_checkable
class Model(Protocol):
    """A causal language model the stages can prompt.

    Prompts are user messages or chat messages; the backend renders them with the model's
    chat template (when it has one) and appends ``answer_prefix`` as the start of the
    assistant's answer.
    """

    name: str

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        answer_prefix: str = "",
        constrain_to: Optional[Sequence[str]] = None,
        separators: Sequence[str] = (),
    ) -> List[str]:
        """Greedy-decode one answer per prompt (batched).

        prompts: The user messages.
        max_new_tokens: The most tokens to generate per prompt.
        stop: Strings that end an answer; the answer is cut before the first one.
        answer_prefix: Text forced at the start of the answer (not returned).
        constrain_to: Optional input text per prompt: the answer may only contain copies of
            text from it and ``separators`` (backends without support may ignore it).
        RETURNS: The answers, in the order of ``prompts``.
        """
        ...

    def score(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[Sequence[str]],
    ) -> List[List[float]]:
        """Log-probability of each continuation as the answer to its prompt.

        prompts: The user messages.
        continuations: For each prompt, the candidate answers to score.
        RETURNS: For each prompt, one summed log-probability per continuation.
        """
        ...

    @property
    def stats(self) -> Dict[str, int]:
        """Counters: calls, forward passes, prompt and generated tokens."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns strings into L2-normalised vectors."""

    name: str

    def embed(self, texts: Sequence[str]) -> "object":
        """RETURNS (numpy.ndarray): shape (len(texts), dim), rows of norm 1 (or 0 for empty text)."""
        ...


class ModelLoadError(RuntimeError):
    """A model could not be found or loaded; the message says how to fix it."""


def maybe_name(model: object) -> Optional[str]:
    return getattr(model, "name", None)
