"""Settings shared by the stages."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..types import Demo


@dataclass
class Settings:
    """What the prompts need: the label set and the template files.

    labels: The entity labels, in config order.
    descriptions: Optional one-line description per label.
    templates: Stage name -> template file (extract, classify, validate, boundary).
    prompt_dir: Folder searched for templates before the built-in ones ("" for none).
    max_new_tokens: Longest extraction answer, in tokens.
    none_option: Whether classification offers "none" (not an entity) besides the labels.
    constrained: Constrain extraction decoding to copies of the input text (and JSON syntax).
    """

    labels: List[str]
    descriptions: Dict[str, str] = field(default_factory=dict)
    templates: Dict[str, str] = field(
        default_factory=lambda: {
            "extract": "extract.v1.jinja",
            "classify": "classify.v1.jinja",
            "validate": "validate.v1.jinja",
            "boundary": "boundary.v1.jinja",
        }
    )
    prompt_dir: str = ""
    max_new_tokens: int = 64
    none_option: bool = False
    constrained: bool = False

    def context(self, demos: Optional[List[Demo]] = None) -> Dict[str, object]:
        return {
            "labels": self.labels,
            "descriptions": self.descriptions,
            "examples": [
                {"text": d.text, "entities": d.entities, "non_entities": d.non_entities} for d in (demos or [])
            ],
        }
