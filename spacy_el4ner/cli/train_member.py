"""``train-member``: train a spaCy NER pipeline on a store's sentences with spaCy's own ``spacy train``,
to use beside the LLMs as an ``el4ner.SpacyMember.v1``."""
import random
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.tokens import Doc, DocBin
from wasabi import msg

from ..readers import read_docs
from ..store import DemoStore


def split_docs(docs: List[Doc], dev_fraction: float, seed: int) -> "tuple[List[Doc], List[Doc]]":
    """``docs`` shuffled with ``seed`` and split into (train, dev); dev holds ``dev_fraction`` of
    them, at least one. RAISES typer.BadParameter: fewer than 2 docs, or a fraction outside (0, 1)."""
    if not 0.0 < dev_fraction < 1.0:
        raise typer.BadParameter(f"--dev-fraction must be between 0 and 1, not {dev_fraction}")
    if len(docs) < 2:
        raise typer.BadParameter(f"the store holds {len(docs)} sentence(s): training needs at least 2 (one for dev)")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, int(round(dev_fraction * len(docs))))
    dev = [docs[i] for i in sorted(order[:n_dev])]
    train = [docs[i] for i in sorted(order[n_dev:])]
    return train, dev


def train_member(
    store: Path = typer.Option(..., "--store", help="Demonstration store folder (store build): its sentences are the training data"),
    output: Path = typer.Option(..., "--output", help="Folder for the corpus, config.cfg and the trained pipeline (OUTPUT/model-best)"),
    dev: Optional[Path] = typer.Option(None, "--dev", help="Labelled dev data (.spacy, JSONL or BIO) for early stopping; default: --dev-fraction of the store held out"),
    dev_fraction: float = typer.Option(0.2, "--dev-fraction", help="Share of the store held out as dev when --dev is not given"),
    seed: int = typer.Option(0, "--seed"),
    optimize: str = typer.Option("efficiency", "--optimize", help="spacy init config --optimize: efficiency (CNN) or accuracy"),
    max_steps: int = typer.Option(0, "--max-steps", help="Training steps (0: spaCy's default, early stopping on dev)"),
    gpu_id: int = typer.Option(-1, "--gpu-id"),
) -> None:
    """Train spaCy's NER on the store's sentences (``spacy init config --pipeline ner`` and
    ``spacy train``) and print the member block that adds it to the ensemble."""
    from spacy.cli.init_config import init_config
    from spacy.cli.train import train

    nlp = spacy.blank("en")
    loaded = DemoStore(nlp.vocab).from_disk(store)
    docs = [d for d in loaded.docs]
    if dev is not None:
        train_docs, dev_docs = docs, read_docs(dev, nlp)
    else:
        train_docs, dev_docs = split_docs(docs, dev_fraction, seed)
    corpus = output / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    DocBin(docs=train_docs).to_disk(corpus / "train.spacy")
    DocBin(docs=dev_docs).to_disk(corpus / "dev.spacy")
    config = init_config(lang="en", pipeline=["ner"], optimize=optimize, gpu=gpu_id >= 0, silent=True)
    config_path = output / "config.cfg"
    config.to_disk(config_path)
    overrides = {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy"), "system.seed": seed}
    if max_steps:
        overrides["training.max_steps"] = max_steps
    msg.info(f"Training spaCy NER on {len(train_docs)} sentences (dev {len(dev_docs)}) -> {output / 'model-best'}")
    train(config_path, output, use_gpu=gpu_id, overrides=overrides)
    best = output / "model-best"
    labels = sorted({e.label_ for d in train_docs for e in d.ents})
    msg.good(f"Trained {best}: labels {labels}")
    typer.echo(
        "Add it to the ensemble (el4ner.Members.v1):\n"
        "[components.el4ner.ensemble.members.spacy]\n"
        '@el4ner_members = "el4ner.SpacyMember.v1"\n'
        f'pipeline = "{best}"'
    )
