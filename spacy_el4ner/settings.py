"""The component's settings: defaults of its config blocks, and the checks that turn the blocks into
the stages' ``Settings`` (every value is checked where the component is built, with a coded error
that says what to change)."""
import difflib
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .ensemble import VOTING_RULES
from .errors import Errors
from .members import Members
from .prompts import TEMPLATE_DIR
from .stages.common import Settings
from .stages.prior import EntityPrior, TypePrior

# The plain blocks (no registered function): a config that sets some keys gets the others from here.
EXTRACT = {"max_new_tokens": 64, "demos": None, "template": "extract.v1.jinja"}
CLASSIFY = {
    "voting": "majority",
    "demos": 3,
    "template": "classify.v1.jinja",
    "type_prior": {"@el4ner_priors": "el4ner.StoreKNNPrior.v1", "k": 5, "temperature": 0.05, "mix": 0.3, "weight": 1.0},
}
VALIDATE = {"demos": 1, "template": "validate.v1.jinja", "skip_above": 0.9}
ACCEPT = {"min_confidence": 0.3, "validation_threshold": 0.0, "extraction_quorum": 0.0, "finder_sets": [], "entity_prior": None}
BLOCKS = {"extract": EXTRACT, "classify": CLASSIFY, "validate": VALIDATE, "accept": ACCEPT}
DEFAULT_MEMBERS = ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"]

# The factory's default config: one place for every default (docs/configuration.md shows it whole).
DEFAULT_CONFIG: Dict[str, Any] = {
    "labels": [],
    "label_descriptions": {},
    "ensemble": {
        "@el4ner_members": "el4ner.Ensemble.v1",
        "models": list(DEFAULT_MEMBERS),
        "engine": "transformers",
        "dtype": "fastest",
        "device": None,
        "device_map": None,
        "batch_size": 8,
        "max_context": 4096,
        "trust_remote_code": False,
        "cache": None,
        "n_threads": None,
    },
    "encoder": {"@el4ner_encoders": "el4ner.HFEncoder.v1", "name": "all-minilm-l6-v2"},
    "store": {"@el4ner_stores": "el4ner.DemoStore.v1", "path": None},
    "retriever": {"@el4ner_retrievers": "el4ner.SentenceSimRetriever.v1", "k": 4, "max_empty": 1},
    "extract": dict(EXTRACT),
    "classify": dict(CLASSIFY),
    "validate": dict(VALIDATE),
    "accept": dict(ACCEPT),
    "edges": {
        "@el4ner_boundaries": "el4ner.StoreEdges.v1", "max_rate": 0.05, "min_count": 5, "number_rate": 0.9,
        "lower_case": True, "stop_words": True, "brackets": True, "numbers": True,
    },
    "max_unit_tokens": 200,
    "batch_size": 16,
    "spans_key": "el4ner",
    "keep_existing_ents": True,
    "scorer": {"@scorers": "spacy.ner_scorer.v1"},
}


def block(name: str, value: Any, nullable: bool = False) -> Optional[Dict[str, Any]]:
    """The block ``name`` with its defaults filled in (for blocks built in Python, not from a config).

    RAISES ValueError: E016 for a value that is not a dict (or null where not allowed), E015 for an
    unknown key (with the nearest known one).
    """
    if value is None and nullable:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(Errors.E016.format(block=name, value=value))
    known = BLOCKS[name]
    for key in value:
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(Errors.E015.format(key=key, block=name, hint=hint, known=sorted(known)))
    defaults = {k: v for k, v in known.items() if not (isinstance(v, dict) and "@el4ner_priors" in v)}
    return {**defaults, **value}


def _number(key: str, value: Any, low: float, high: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
        rule = f"a number from {low} to {high}" if high is not None else f"a number >= {low}"
        raise ValueError(Errors.E011.format(key=key, rule=rule, value=value))
    return float(value)


def integer(key: str, value: Any, low: int) -> int:
    """``value`` if it is an integer >= ``low``. RAISES ValueError: E011."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(Errors.E011.format(key=key, rule=f"an integer >= {low}", value=value))
    return value


def _demos(key: str, value: Any) -> Optional[int]:
    return None if value is None else integer(key, value, 0)


def _template(stage: str, value: Any) -> str:
    from pathlib import Path

    if not isinstance(value, str) or not value:
        raise ValueError(Errors.E011.format(key=f"{stage}.template", rule="a template name or file path", value=value))
    if not (TEMPLATE_DIR / value).is_file() and not Path(value).is_file():
        known = sorted(p.name for p in TEMPLATE_DIR.glob("*.jinja") if not p.name.startswith("_"))
        raise ValueError(Errors.E020.format(name=value, stage=stage, known=known))
    return value


def _member_names(key: str, names: Sequence[Any], members: Members) -> List[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise ValueError(Errors.E011.format(key=key, rule="a non-empty list of member names", value=names))
    unknown = [n for n in names if n not in members]
    if unknown:
        raise ValueError(Errors.E018.format(key=key, names=unknown, members=list(members)))
    return list(names)


def check_labels(labels: Any, descriptions: Any) -> None:
    """RAISES ValueError: E011 for labels that are not distinct non-empty strings, descriptions that
    are not label -> text, or descriptions of labels that are not in ``labels``."""
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise ValueError(Errors.E011.format(key="labels", rule="a list of non-empty strings", value=labels))
    if len(set(labels)) != len(labels):
        raise ValueError(Errors.E011.format(key="labels", rule="a list without repeats", value=labels))
    if not isinstance(descriptions, Mapping) or not all(isinstance(v, str) for v in descriptions.values()):
        raise ValueError(Errors.E011.format(key="label_descriptions", rule="a table of label = \"text\"", value=descriptions))
    unknown = sorted(set(descriptions) - set(labels))
    if labels and unknown:
        raise ValueError(Errors.E011.format(key="label_descriptions", rule=f"about labels in `labels` ({list(labels)})", value=unknown))


def build_settings(
    labels: Sequence[str],
    descriptions: Mapping[str, str],
    members: Members,
    extract: Mapping[str, Any],
    classify: Mapping[str, Any],
    validate: Optional[Mapping[str, Any]],
    accept: Mapping[str, Any],
) -> Settings:
    """The stages' settings from the component's blocks and member blocks, every value checked.

    RAISES ValueError: a coded error (E011-E020) naming the setting and what it may be.
    """
    check_labels(labels, descriptions)
    extract = block("extract", extract)
    classify = {**block("classify", {k: v for k, v in classify.items() if k != "type_prior"}), "type_prior": classify.get("type_prior")}
    validate = block("validate", validate, nullable=True)
    accept = block("accept", accept)
    integer("extract.max_new_tokens", extract["max_new_tokens"], 1)
    if classify["voting"] not in VOTING_RULES:
        raise ValueError(Errors.E011.format(key="classify.voting", rule=f"one of {VOTING_RULES}", value=classify["voting"]))
    if classify["type_prior"] is not None and not isinstance(classify["type_prior"], TypePrior):
        raise ValueError(Errors.E011.format(key="classify.type_prior", rule="an @el4ner_priors block or null", value=classify["type_prior"]))
    if accept["entity_prior"] is not None and not isinstance(accept["entity_prior"], EntityPrior):
        raise ValueError(Errors.E011.format(key="accept.entity_prior", rule="an @el4ner_priors block or null", value=accept["entity_prior"]))
    for key in ("min_confidence", "validation_threshold"):
        _number(f"accept.{key}", accept[key], 0.0, 1.0)
    _number("accept.extraction_quorum", accept["extraction_quorum"], 0.0)
    if not isinstance(accept["finder_sets"], (list, tuple)):
        raise ValueError(Errors.E011.format(key="accept.finder_sets", rule="a list of lists of member names", value=accept["finder_sets"]))
    finder_sets = [_member_names("accept.finder_sets", s, members) for s in accept["finder_sets"]]
    templates = {"extract": _template("extract", extract["template"]), "classify": _template("classify", classify["template"])}
    stage_demos = {}
    for stage, blk in (("extract", extract), ("classify", classify), ("validate", validate)):
        if blk is not None and _demos(f"{stage}.demos", blk["demos"]) is not None:
            stage_demos[stage] = blk["demos"]
    if validate is not None:
        templates["validate"] = _template("validate", validate["template"])
        _number("validate.skip_above", validate["skip_above"], 0.0, 1.0)
        if not members.verifiers():
            raise ValueError(Errors.E017)
    else:
        templates["validate"] = VALIDATE["template"]
    from .models.spacy_ner import SpacyNER

    spans = [n for n, m in members.items() if isinstance(m.model, SpacyNER)]
    for n in spans:
        if members[n].verifier:
            raise ValueError(Errors.E193.format(name=n))
    fine = [n for n, m in members.items() if m.prompt == "fine-tuned" and n not in spans]
    return Settings(
        labels=list(labels),
        descriptions=dict(descriptions),
        templates=templates,
        max_new_tokens=extract["max_new_tokens"],
        stage_demos=stage_demos,
        constrained=[n for n, m in members.items() if m.constrained],
        finetune_prompt=fine,
        finetune_votes={n: members[n].votes for n in fine},
        member_weights={n: m.weight for n, m in members.items()},
        extraction_quorum=float(accept["extraction_quorum"]),
        accept_finder_sets=finder_sets,
        member_demo_views={n: m.view for n, m in members.items() if m.view},
        span_members=spans,
    )
