"""The component config of an ``evaluate`` run: ``--members`` specs and ``--set`` settings.

``--set KEY=JSON`` takes a component setting by its path in the config, e.g.
``accept.min_confidence=0.4``, ``classify.voting="first"``, ``validate=null`` or
``retriever={"@el4ner_retrievers": "el4ner.RandomRetriever.v1", "k": 4}``, and a member setting
(a field of ``el4ner.Member.v1``) as ``member.FIELD``: one value for every member, or a JSON object
``{"NAME": value}`` for some, e.g. ``member.weight={"qwen2.5-coder-0.5b-instruct": 2.0}``.
"""
import copy
import json
from typing import Any, Dict, List, Optional, Sequence

import typer

from ..members import Member

MEMBER_FIELDS = ("weight", "view", "prompt", "votes", "constrained", "verifier")
SPACY = "spacy:"  # a --members spec: spacy:PATH is a trained spaCy pipeline
# settings about who extracted a span: they belong to the whole ensemble, not to a member alone
ENSEMBLE_ONLY = ("accept.finder_sets", "accept.extraction_quorum")


def parse_settings(items: List[str]) -> Dict[str, Any]:
    """``KEY=JSON`` strings -> a dict (values that are not JSON stay strings)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def member_views(members: Sequence[str]) -> Dict[str, int]:
    """The demonstration views named in member specs: ``NAME@VIEW`` (e.g. a second copy of a
    model, ``qwen2.5-coder-0.5b-instruct@1``, that sees the next k demonstrations)."""
    views: Dict[str, int] = {}
    for m in members:
        _, at, view = m.rpartition("@")
        if not at:
            continue
        if not view.isdigit():
            raise typer.BadParameter(f"member {m!r}: the part after '@' is a demonstration view, a number >= 0 (e.g. {m.rpartition('@')[0]}@1)")
        views[m] = int(view)
    return views


def member_settings(overrides: Dict[str, Any], members: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Member name -> its ``el4ner.Member.v1`` settings from ``member.FIELD`` overrides and
    ``NAME@VIEW`` specs (empty for a member with the defaults).

    RAISES typer.BadParameter: for an unknown field or a member that is not in the run.
    """
    out: Dict[str, Dict[str, Any]] = {m: {} for m in members}
    for m, view in member_views(members).items():
        out[m]["view"] = view
    for key, value in overrides.items():
        if not key.startswith("member."):
            continue
        field = key.partition(".")[2]
        if field not in MEMBER_FIELDS:
            raise typer.BadParameter(f"--set {key}: a member setting is one of {', '.join('member.' + f for f in MEMBER_FIELDS)}")
        per = value if isinstance(value, dict) else {m: value for m in members}
        unknown = sorted(set(per) - set(members))
        if unknown:
            raise typer.BadParameter(f"--set {key}: {unknown} are not members of this run ({list(members)})")
        for m, v in per.items():
            out[m][field] = v
    return out


def component_settings(overrides: Dict[str, Any]) -> Dict[str, Any]:
    """The component config from the non-member overrides: dotted paths become nested blocks."""
    out: Dict[str, Any] = {}
    for key, value in overrides.items():
        if key.startswith("member."):
            continue
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise typer.BadParameter(f"--set {key}: {part} is not a block of settings")
        node[last] = copy.deepcopy(value)
    return out


def for_members(overrides: Dict[str, Any], members: Sequence[str], all_members: Sequence[str]) -> Dict[str, Any]:
    """The overrides for a run of some of the members (a member alone): the settings about who
    extracted a span (``accept.finder_sets``, ``accept.extraction_quorum``) are dropped, and member
    settings keep the members of the run."""
    if list(members) == list(all_members):
        return overrides
    out: Dict[str, Any] = {}
    for key, value in overrides.items():
        if key in ENSEMBLE_ONLY:
            continue
        if key.startswith("member.") and isinstance(value, dict):
            value = {m: v for m, v in value.items() if m in members}
        out[key] = value
    return out


def ensemble_block(
    members: Sequence[str], settings: Dict[str, Dict[str, Any]], engine: str, dtype: str, cache: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    """The ``ensemble`` block: ``el4ner.Ensemble.v1`` for plain names with default settings, else
    ``el4ner.Members.v1`` (``NAME+ADAPTER_DIR``: a member with a CLLMFS / LoRA adapter, on either
    engine; ``NAME@VIEW``: a copy that sees demonstration view VIEW;
    ``spacy:PATH``: a trained spaCy pipeline, ``el4ner.SpacyMember.v1``)."""
    first_only = all(s == {} for s in settings.values())
    if first_only and not any("+" in m or "@" in m or m.startswith(SPACY) for m in members):
        block: Dict[str, Any] = {"@el4ner_members": "el4ner.Ensemble.v1", "models": list(members), "engine": engine}
        if engine == "transformers":
            block["dtype"] = dtype
        if cache:
            block["cache"] = cache
        return block
    verifiers_set = any("verifier" in s for s in settings.values())
    blocks: Dict[str, Any] = {}
    llms = [m for m in members if not m.startswith(SPACY)]
    for m in members:
        if m.startswith(SPACY):  # spacy:PATH: a trained spaCy pipeline (train-member) as a member
            extra = {k: v for k, v in settings.get(m, {}).items() if k == "weight"}
            blocks[m] = {"@el4ner_members": "el4ner.SpacyMember.v1", "pipeline": m[len(SPACY):], **extra}
            continue
        base, _, adapter = (m.rpartition("@")[0] if "@" in m and m.rpartition("@")[2].isdigit() else m).partition("+")
        model: Dict[str, Any]
        if engine == "llama.cpp":
            model = {"@el4ner_models": "el4ner.LlamaCppModel.v1", "name": base}
        else:
            model = {"@el4ner_models": "el4ner.HFModel.v1", "name": base, "dtype": dtype}
        if adapter:
            model["adapter"] = adapter
        if cache:
            model["cache"] = cache
        member = {"@el4ner_members": "el4ner.Member.v1", "model": model, **settings.get(m, {})}
        if not verifiers_set:
            member["verifier"] = bool(llms) and m == llms[0]  # the first language model verifies
        blocks[m] = member
    for m, b in blocks.items():  # checked here, with the member's name, before any model is built
        if not m.startswith(SPACY):
            Member(None, **{k: v for k, v in b.items() if k in MEMBER_FIELDS})  # type: ignore[arg-type]
    return {"@el4ner_members": "el4ner.Members.v1", "members": blocks}
