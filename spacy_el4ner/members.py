"""Ensemble members: a model plus what the pipeline does with it (one config block each)."""
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping

from .errors import Errors
from .models.protocol import Model

PROMPTS = ("few-shot", "fine-tuned")
VOTES = ("extracted", "scored", "prompt")


@dataclass
class Member:
    """One ensemble member.

    model (Model): The language model.
    weight (float): Weight of its extraction (``accept.extraction_quorum`` sums the weights of the
        members that found a span).
    view (int): Demonstration view: 0, the k most similar store docs; 1, the next k; ... Two members
        of one model with different views see different demonstrations.
    prompt (str): "few-shot" (the extraction prompt with demonstrations) or "fine-tuned" (one prompt
        per label, no demonstrations: the format a CLLMFS adapter learned; for an adapter on a base
        model, which does not follow the few-shot prompt).
    votes (str): How a "fine-tuned" member types spans: "extracted" (the labels it extracted the span
        under; it abstains on spans it did not find), "scored" (each label's fine-tuning prompt
        scores the span) or "prompt" (the few-shot classification prompt). Unused for "few-shot".
    constrained (bool): Constrain extraction decoding to copies of the input text (and JSON syntax).
    verifier (bool): Whether it answers the validation prompt.
    """

    model: Model
    weight: float = 1.0
    view: int = 0
    prompt: str = "few-shot"
    votes: str = "extracted"
    constrained: bool = False
    verifier: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or self.weight < 0:
            raise ValueError(Errors.E011.format(key="weight", value=self.weight, rule="a number >= 0"))
        if isinstance(self.view, bool) or not isinstance(self.view, int) or self.view < 0:
            raise ValueError(Errors.E011.format(key="view", value=self.view, rule="an integer >= 0"))
        if self.prompt not in PROMPTS:
            raise ValueError(Errors.E011.format(key="prompt", value=self.prompt, rule=f"one of {PROMPTS}"))
        if self.votes not in VOTES:
            raise ValueError(Errors.E011.format(key="votes", value=self.votes, rule=f"one of {VOTES}"))
        for key in ("constrained", "verifier"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(Errors.E011.format(key=key, value=getattr(self, key), rule="true or false"))


class Members(Mapping[str, Member]):
    """The members by name, in order (order breaks voting ties).

    names_are_sections: whether the names are config section names (``el4ner.Members.v1``): a saved
    config.cfg can then only be read back when they hold no ``.``.
    """

    def __init__(self, members: Mapping[str, Member], names_are_sections: bool = False) -> None:
        if not members:
            raise ValueError(Errors.E012)
        bad = {n: type(m).__name__ for n, m in members.items() if not isinstance(m, Member)}
        if bad:
            raise ValueError(Errors.E013.format(bad=bad))
        self._members: Dict[str, Member] = dict(members)
        self.names_are_sections = names_are_sections

    def __getitem__(self, name: str) -> Member:
        return self._members[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def models(self) -> Dict[str, Model]:
        """Name -> model, in order."""
        return {n: m.model for n, m in self._members.items()}

    def verifiers(self) -> List[str]:
        """The names of the members that answer the validation prompt."""
        return [n for n, m in self._members.items() if m.verifier]
