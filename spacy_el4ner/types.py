"""The small typed records that pass between stages."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple


@dataclass
class Demo:
    """One in-context demonstration: a text and its typed entities (in order of appearance)."""

    text: str
    entities: List[Tuple[str, str]]  # (surface text, label)
    non_entities: List[str] = field(default_factory=list)  # words outside entities (negatives)


@dataclass
class Candidate:
    """A candidate span of one unit, with what every stage said about it.

    start/end are character offsets into the unit's text.
    """

    start: int
    end: int
    text: str
    extracted_by: Set[str] = field(default_factory=set)
    # member -> the labels it extracted the span under (members asked with the per-label
    # fine-tuning prompt only; ``Settings.finetune_votes``)
    extracted_as: Dict[str, Set[str]] = field(default_factory=dict)
    votes: Dict[str, Optional[str]] = field(default_factory=dict)  # member -> label (None: abstains)
    label_probs: Dict[str, Dict[str, float]] = field(default_factory=dict)  # member -> label -> p (x type prior)
    type_prior: Optional[Dict[str, float]] = None  # label -> p from the store's labelled spans
    label: Optional[str] = None
    label_score: float = 0.0  # mean probability of the chosen label over the members
    validation: Optional[float] = None  # verifier's P(yes); None when not validated
    entity_score: Optional[float] = None  # P(entity) ** weight from the store (StoreEntityPrior); None: not used
    confidence: float = 0.0
    refined_from: Optional[str] = None  # the extracted text, when `edges` moved its edges

    @property
    def key(self) -> Tuple[int, int]:
        return (self.start, self.end)


@dataclass
class Unit:
    """A piece of a Doc (the whole Doc, or a run of sentences of a long Doc) sent to the models.

    doc_index: Index of the Doc in the batch.
    offset: Character offset of ``text`` in the Doc.
    """

    doc_index: int
    offset: int
    text: str
    query_spans: List[Tuple[int, int]] = field(default_factory=list)
    query_weights: List[float] = field(default_factory=list)
    demos: List[Demo] = field(default_factory=list)
    # views 1, 2, ...: the next k demonstrations by similarity, for members given a view
    # (``Settings.member_demo_views``); view 0 is ``demos``
    demo_views: List[List[Demo]] = field(default_factory=list)
    candidates: Dict[Tuple[int, int], Candidate] = field(default_factory=dict)
    unaligned: List[Tuple[str, str]] = field(default_factory=list)  # (member, answer string)
    # member -> its (label, mention) answers to the fine-tuning prompt (no demonstrations, so the
    # same prompts whether it pre-extracts for retrieval or extracts): asked once, reused after
    finetune_items: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)
    # (start, end) -> member -> the labels it found the span under (fine-tuning prompt members)
    extracted_as: Dict[Tuple[int, int], Dict[str, Set[str]]] = field(default_factory=dict)
    # (start, end) -> member -> label -> probability (spaCy pipeline members)
    predicted: Dict[Tuple[int, int], Dict[str, Dict[str, float]]] = field(default_factory=dict)

    def demos_for(self, view: int) -> List[Demo]:
        """The demonstrations of ``view`` (0: ``demos``); a view the store was too small for
        falls back to ``demos``."""
        if 0 < view <= len(self.demo_views) and self.demo_views[view - 1]:
            return self.demo_views[view - 1]
        return self.demos

    def add_candidate(self, start: int, end: int, member: str) -> Candidate:
        cand = self.candidates.get((start, end))
        if cand is None:
            cand = Candidate(start=start, end=end, text=self.text[start:end])
            self.candidates[(start, end)] = cand
        cand.extracted_by.add(member)
        labels = self.extracted_as.get((start, end), {}).get(member)
        if labels:
            cand.extracted_as[member] = set(labels)
        return cand
