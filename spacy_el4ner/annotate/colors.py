"""Label colours as displaCy draws them: spaCy's own colour for a label it knows (also under a
common lower-case name, e.g. "person" -> PERSON), the rest from the same palette in turn."""
from typing import Dict, Sequence

from spacy.displacy.render import DEFAULT_LABEL_COLORS

ALIASES = {
    "PER": "PERSON", "LOCATION": "LOC", "CORPORATION": "ORG", "COMPANY": "ORG", "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG", "GROUP": "NORP", "CREATIVE-WORK": "WORK_OF_ART", "CREATIVE_WORK": "WORK_OF_ART",
    "MISC": "EVENT", "DISEASE": "LAW", "COUNTRY": "GPE", "CITY": "GPE",
}
PALETTE = list(dict.fromkeys(DEFAULT_LABEL_COLORS.values()))


def label_colors(labels: Sequence[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    used = set()
    for label in labels:
        key = label.upper()
        color = DEFAULT_LABEL_COLORS.get(key) or DEFAULT_LABEL_COLORS.get(ALIASES.get(key, ""))
        if color and color not in used:
            out[label] = color
            used.add(color)
    free = [c for c in PALETTE if c not in used] or PALETTE
    for i, label in enumerate(lb for lb in labels if lb not in out):
        out[label] = free[i % len(free)]
    return out
