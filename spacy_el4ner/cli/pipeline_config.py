"""The config of a pipeline that ``evaluate`` built, as a ``config.cfg`` that loads on its own.

``evaluate`` names members ``NAME``, ``NAME+ADAPTER`` and ``NAME@VIEW``. Under
``el4ner.Members.v1`` those names are config *section* names, and a section name cannot hold
a ``.`` (``qwen2.5-coder-0.5b-instruct`` would be read as section ``qwen2`` and subsection
``5-coder-0``). The exported config renames such members (``.`` → ``_``) everywhere a member is
named: the member blocks, ``accept.finder_sets`` and the retriever's ``pre_extraction_by``. A spaCy tagger pipeline the run used for
the POS weights is referenced with ``source``, so its trained weights load too.
"""
import copy
from typing import Any, Dict, List, Optional

from confection import Config
from spacy.language import Language

from ..errors import Errors
from ..registry import config_key

EL4NER = "el4ner"


def member_renames(members_cfg: Dict[str, Any]) -> Dict[str, str]:
    """Old → new member names for an ``el4ner.Members.v1`` block (empty for other blocks).

    RAISES ValueError: if two members would get one name.
    """
    if members_cfg.get("@el4ner_members") != "el4ner.Members.v1":
        return {}
    renames = {name: config_key(name) for name in members_cfg.get("members", {})}
    new = list(renames.values())
    clashes = sorted({n for n in new if new.count(n) > 1})
    if clashes:
        raise ValueError(Errors.E621.format(names=sorted(o for o, n in renames.items() if n in clashes), clashes=clashes))
    return {old: new for old, new in renames.items() if old != new}


def rename_members(component: Dict[str, Any], renames: Dict[str, str]) -> Dict[str, Any]:
    """The ``el4ner`` component's config with every member name mapped through ``renames``.

    component (Dict[str, Any]): The component's config block (not changed).
    renames (Dict[str, str]): Old → new names; names not in it stay.
    RETURNS (Dict[str, Any]): A renamed deep copy.
    """
    cfg = copy.deepcopy(component)
    if not renames:
        return cfg

    def new(name: str) -> str:
        return renames.get(name, name)

    ensemble = cfg["ensemble"]
    ensemble["members"] = {new(k): v for k, v in ensemble["members"].items()}
    accept = cfg.get("accept")
    if isinstance(accept, dict) and isinstance(accept.get("finder_sets"), list):
        accept["finder_sets"] = [[new(m) for m in finder_set] for finder_set in accept["finder_sets"]]
    retriever = cfg.get("retriever")
    if isinstance(retriever, dict) and isinstance(retriever.get("pre_extraction_by"), list):
        retriever["pre_extraction_by"] = [new(m) for m in retriever["pre_extraction_by"]]
    return cfg


def pipeline_config(nlp: Language, source: Optional[str] = None) -> Config:
    """A config for ``nlp``'s ``el4ner`` pipeline that ``spacy.util.load_config`` → ``spacy
    assemble`` / ``spacy.util.load_model_from_config`` turns back into the same pipeline.

    nlp (Language): A pipeline with an ``el4ner`` component (e.g. from ``evaluate``'s ``build_pipeline``).
    source (Optional[str]): The installed spaCy pipeline the other components came from (the
        tagger for the POS weights): they are written as ``source = ...`` blocks. None: ``nlp`` has
        no components besides ``el4ner``.
    RETURNS (Config): The config; paths in it (store, adapters, cache) are as ``nlp`` has them.
    RAISES ValueError: if ``nlp`` has no ``el4ner`` component or other components without a source.
    """
    if EL4NER not in nlp.component_names:
        raise ValueError(Errors.E622.format(name=EL4NER, components=nlp.component_names))
    others: List[str] = [n for n in nlp.component_names if n != EL4NER]
    if others and not source:
        raise ValueError(Errors.E623.format(others=others))
    component = nlp.config["components"][EL4NER]
    components: Dict[str, Any] = {n: {"source": source} for n in others}
    components[EL4NER] = rename_members(component, member_renames(component["ensemble"]))
    return Config(
        {
            "nlp": {
                "lang": nlp.lang,
                "pipeline": list(nlp.component_names),
                "disabled": [n for n in nlp.disabled if n in nlp.component_names],
            },
            "components": components,
        }
    )
