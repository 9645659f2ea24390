"""CLLMFS (Contrastive Learning enhanced LLM Framework for Few-Shot NER): LoRA fine-tuning of a
causal LM on few-shot data, with an InfoNCE term on mid-layer span representations.

Modules: ``format`` (prompt and ``<<< mention >>>`` answer format), ``data`` (training records),
``loss`` (InfoNCE, span pooling), ``train`` (the training loop), ``generate`` (inference and
span-level F1). The adapter it writes loads with ``HFModel(base, adapter=folder)``
(``el4ner.HFModel.v1`` with ``adapter = "..."`` in a config).
"""
from .data import NON_ENTITY, Record, build_records, load_docs
from .format import EMPTY_ANSWER, SEPARATORS, build_messages, format_answer, parse_answer
from .loss import info_nce, span_representations
from .train import META_FILE, FinetuneConfig

# ``train`` (the function) is not re-exported: it would shadow the ``train`` module.
# Use ``from spacy_el4ner.finetune.train import train``.

__all__ = [
    "EMPTY_ANSWER",
    "META_FILE",
    "NON_ENTITY",
    "SEPARATORS",
    "FinetuneConfig",
    "Record",
    "build_messages",
    "build_records",
    "format_answer",
    "info_nce",
    "load_docs",
    "parse_answer",
    "span_representations",
]
