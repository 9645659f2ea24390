"""Settings shared by the stages."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from ..types import Demo, Unit

J = TypeVar("J")
P = TypeVar("P")

# The stages whose prompts show demonstrations.
STAGES = ("extract", "classify", "validate")


@dataclass
class Settings:
    """What the stages need: the label set, the templates and the members' settings (the
    component builds it from its config blocks and the member blocks).

    labels: The entity labels, in config order.
    descriptions: Optional one-line description per label.
    templates: Stage name -> template: a built-in file name (extract, classify, validate) or the
        path of a Jinja file.
    max_new_tokens: Longest extraction answer, in tokens.
    stage_demos: Stage name -> at most this many demonstrations in its prompts, the most similar
        ones (default: all the retrieved ones). Fewer demonstrations = shorter prompts.
    constrained: The members whose extraction decoding is constrained to copies of the input text
        (and JSON syntax).
    finetune_prompt: Members that extract with the fine-tuning prompt (``finetune.v1.jinja``, one
        prompt per label, no demonstrations), the format their CLLMFS adapter learned.
    finetune_votes: How each ``finetune_prompt`` member types a span: "extracted" (the label(s) it
        extracted it under; it abstains on spans it did not find), "scored" (by scoring the span
        under each label's fine-tuning prompt) or "prompt" (the few-shot classification prompt).
    member_weights: Weight of each member's extraction (default 1.0 each).
    extraction_quorum: A span found by the members is a candidate when the summed weights of the
        members that found it reach this (0: the union, the paper's rule).
    accept_finder_sets: If not empty, a span is a candidate only when the set of members that
        found it is one of these (``calibrate`` measures which sets pay on labelled dev data).
    member_demo_views: Member -> demonstration view (default 0: the k most similar store docs;
        1: the next k by similarity; ...).
    span_members: Members that are spaCy pipelines: they predict spans (no prompt) and vote with
        the labels they predicted.
    """

    labels: List[str]
    descriptions: Dict[str, str] = field(default_factory=dict)
    templates: Dict[str, str] = field(
        default_factory=lambda: {"extract": "extract.v1.jinja", "classify": "classify.v1.jinja", "validate": "validate.v1.jinja"}
    )
    max_new_tokens: int = 64
    stage_demos: Dict[str, int] = field(default_factory=dict)
    constrained: List[str] = field(default_factory=list)
    finetune_prompt: List[str] = field(default_factory=list)
    finetune_votes: Dict[str, str] = field(default_factory=dict)
    member_weights: Dict[str, float] = field(default_factory=dict)
    extraction_quorum: float = 0.0
    accept_finder_sets: List[List[str]] = field(default_factory=list)
    member_demo_views: Dict[str, int] = field(default_factory=dict)
    span_members: List[str] = field(default_factory=list)

    def template(self, stage: str) -> Tuple[str, str]:
        """``(name, folder)`` of ``stage``'s template for ``prompts.render`` (folder "": built-in)."""
        value = self.templates[stage]
        path = Path(value)
        if path.is_file():
            return path.name, str(path.parent.resolve())
        return value, ""

    def votes_of(self, member: str) -> str:
        """How ``member`` types spans: "predicted" for spaCy pipelines, "prompt" for few-shot
        members, else its ``finetune_votes``."""
        if member in self.span_members:
            return "predicted"
        if member not in self.finetune_prompt:
            return "prompt"
        return self.finetune_votes.get(member, "extracted")

    @property
    def demo_views(self) -> int:
        """How many demonstration views the members use (1: every member sees the same k)."""
        return 1 + max(self.member_demo_views.values(), default=0)

    def constrains(self, member: str) -> bool:
        """Whether ``member``'s extraction decoding is constrained to copies of the input text."""
        return member in self.constrained

    def view_of(self, member: str) -> int:
        """The demonstration view of ``member``."""
        return self.member_demo_views.get(member, 0)

    def support(self, names: Iterable[str]) -> float:
        """The summed extraction weight of the members in ``names``."""
        return sum(self.member_weights.get(n, 1.0) for n in names)

    def accepts(self, names: Iterable[str]) -> bool:
        """Whether a span found by exactly the members in ``names`` may become a candidate: its
        summed weight reaches ``extraction_quorum`` and, if ``accept_finder_sets`` is set, the
        set of finders is one of them."""
        names = set(names)
        if self.support(names) < self.extraction_quorum:
            return False
        return not self.accept_finder_sets or any(names == set(s) for s in self.accept_finder_sets)

    def context(self, demos: Optional[List[Demo]] = None, stage: Optional[str] = None) -> Dict[str, object]:
        """The template variables for ``demos`` (most similar last), cut to ``stage_demos[stage]``."""
        demos = list(demos or [])
        if stage in self.stage_demos:
            keep = self.stage_demos[stage]
            demos = demos[-keep:] if keep else []
        return {
            "labels": self.labels,
            "descriptions": self.descriptions,
            "examples": [
                {"text": d.text, "entities": d.entities, "non_entities": d.non_entities} for d in demos
            ],
        }


def prompts_per_view(
    settings: Settings, jobs: Sequence[Tuple[Unit, J]], stage: str, make: Callable[[Unit, J, Dict[str, object]], P]
) -> Callable[[int], List[P]]:
    """``view -> prompts``: one prompt per job (``make(unit, job, template variables)``) with the
    demonstrations of that view, cut to ``stage_demos[stage]``. Each view's list is built on first
    use and then shared by every member (or verifier) of that view.
    """
    by_view: Dict[int, List[P]] = {}

    def prompts_of(view: int) -> List[P]:
        if view not in by_view:
            by_view[view] = [make(unit, job, settings.context(unit.demos_for(view), stage)) for unit, job in jobs]
        return by_view[view]

    return prompts_of
