"""``convert`` (token/BIO, JSONL -> DocBin) and ``store build``."""
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.tokens import DocBin
from wasabi import msg

from ..readers import FORMATS, map_labels, read_docs
from ..similarity import HFEncoder
from ..store import DemoStore

store_app = typer.Typer(no_args_is_help=True, help="Demonstration stores")


def _summary(docs) -> str:
    counts = {}
    for d in docs:
        for e in d.ents:
            counts[e.label_] = counts.get(e.label_, 0) + 1
    return f"{len(docs)} sentences, {sum(counts.values())} entities " + str(dict(sorted(counts.items())))


def convert(
    input_path: Path = typer.Argument(..., help="Token/BIO file (WNUT-17, CrossNER, NCBI), JSONL or .spacy"),
    output: Path = typer.Argument(..., help="Output .spacy file"),
    fmt: str = typer.Option("auto", "--format", help=f"One of {FORMATS}"),
    lowercase: bool = typer.Option(False, "--lowercase-labels", help="Lower-case all labels"),
    limit: int = typer.Option(0, "--limit", help="Keep only the first N sentences (0: all), after --skip"),
    skip: int = typer.Option(0, "--skip", help="Leave out the first N sentences (e.g. a second training slice: --skip 500 --limit 500)"),
) -> None:
    """Convert labelled data to a DocBin and report sentences and entities per label."""
    if skip < 0 or limit < 0:
        msg.fail("--skip and --limit take a number of sentences >= 0", exits=1)
    nlp = spacy.blank("en")
    docs = read_docs(input_path, nlp, fmt)
    if lowercase:
        map_labels(docs, str.lower)
    if skip >= len(docs) and docs:
        msg.fail(f"--skip {skip}: {input_path} has only {len(docs)} sentences", exits=1)
    docs = docs[skip:]
    if limit:
        docs = docs[:limit]
    output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=False).to_disk(output)
    msg.good(f"{input_path} -> {output}: {_summary(docs)}")


@store_app.command("build")
def build(
    inputs: List[Path] = typer.Argument(..., help="Files with labelled docs (.spacy, JSONL, BIO)"),
    output: Path = typer.Option(..., "--output", "-o", help="Store folder to write"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels (default: all in the data)"),
    limit: int = typer.Option(0, "--limit", help="Keep only the first N docs (0: all)"),
    encoder: str = typer.Option("all-minilm-l6-v2", "--encoder", help="Span encoder"),
) -> None:
    """Build a demonstration store folder (docs, span embeddings, metadata)."""
    nlp = spacy.blank("en")
    docs = [d for p in inputs for d in read_docs(p, nlp)]
    if limit:
        docs = docs[:limit]
    store = DemoStore(nlp.vocab, labels.split(",") if labels else [], HFEncoder(encoder))
    store.add(docs)
    if not store.labels:
        store.labels = sorted(store.label_counts())
    msg.info("Embedding spans ...")
    store.span_index()
    store.to_disk(output)
    msg.good(f"Store {output}: {_summary(store.docs)}")
