"""The one place where the pipeline calls its models: it drives the stages' steps (``ty.Step``)."""
import logging
from typing import Any, Callable, Dict, List, Mapping

from .errors import Errors
from .models.protocol import Model
from .ty import Answer, Generate, Predict, R, Request, Score, Step

logger = logging.getLogger("spacy_el4ner")


def drive(step: Step[R], answer: Callable[[Request], Answer]) -> R:
    """Run ``step`` to the end, answering each request with ``answer``.

    RETURNS: The step's result.
    RAISES ValueError: E021 when an answer does not have one entry per prompt.
    """
    try:
        requests = next(step)
        while True:
            answers = []
            for request in requests:
                got = answer(request)
                check_answer(request, got)
                answers.append(got)
            requests = step.send(answers)
    except StopIteration as stop:
        return stop.value


def check_answer(request: Request, got: Any) -> None:
    """RAISES ValueError: E021 when ``got`` has not one entry per prompt, E023 when an entry is not
    what the request asks for (text for ``Generate``, one number per continuation for ``Score``, a
    list of spans for ``Predict``): a backend that breaks the ``Model`` protocol is never guessed at."""
    if not isinstance(got, (list, tuple)):
        raise ValueError(Errors.E023.format(member=request.member, what="a list", got=type(got).__name__, i="-"))
    if len(got) != len(request.prompts):
        raise ValueError(Errors.E021.format(member=request.member, n=len(got), m=len(request.prompts)))
    for i, item in enumerate(got):
        if isinstance(request, Generate):
            ok, what = isinstance(item, str), "a string"
        elif isinstance(request, Score):
            n = len(request.continuations[i])
            ok = isinstance(item, (list, tuple)) and len(item) == n and all(isinstance(x, (int, float)) for x in item)
            what = f"{n} numbers"
        else:
            ok, what = isinstance(item, (list, tuple)), "a list of spans"
        if not ok:
            raise ValueError(Errors.E023.format(member=request.member, what=what, got=repr(item)[:80], i=i))


class Runner:
    """Makes the model calls of the stages: each request goes to its member's ``generate``,
    ``score`` (which batch, cache and run on their engine) or, for a spaCy pipeline, ``predict``.

    models (Mapping[str, Model]): The members by name.
    """

    def __init__(self, models: Mapping[str, Model]) -> None:
        self.models: Dict[str, Model] = dict(models)

    def call(self, request: Request) -> Answer:
        """RETURNS: The answers of ``request``'s member. RAISES KeyError: for an unknown member."""
        model = self.models[request.member]
        if isinstance(request, Generate):
            kwargs = {}
            if request.constrain_to is not None:
                kwargs = {"constrain_to": request.constrain_to, "separators": request.separators}
            return model.generate(
                request.prompts, max_new_tokens=request.max_new_tokens, stop=request.stop,
                answer_prefix=request.answer_prefix, **kwargs,
            )
        if isinstance(request, Score):
            return model.score(request.prompts, request.continuations)
        if isinstance(request, Predict):
            return model.predict(request.texts)  # type: ignore[attr-defined]
        raise TypeError(Errors.E022.format(type=type(request).__name__))

    def run(self, step: Step[R]) -> R:
        """Run a stage's step to the end. RETURNS: its result."""
        return drive(step, self.call)


def run_with(models: Mapping[str, Model], step: Step[R]) -> R:
    """``Runner(models).run(step)``: for calling a stage directly with models."""
    return Runner(models).run(step)


__all__ = ["Runner", "drive", "run_with", "List"]
