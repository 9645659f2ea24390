"""``convert`` (token/BIO, JSONL -> DocBin) and ``store build``."""
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.tokens import DocBin
from wasabi import msg

from ..readers import FORMATS, Skipped, map_labels, read_docs
from ..similarity import HFEncoder
from ..store import DemoStore

store_app = typer.Typer(no_args_is_help=True, help="Demonstration stores")


def _report_skips(skipped: List[Skipped], n_read: int, strict: bool) -> None:
    """Print what was left out (by reason, with up to 5 lines each); with ``strict``, exit 1."""
    if not skipped:
        return
    by_reason: dict = {}
    for sk in skipped:
        kind = sk.reason.split(" (")[0].split(":")[0]
        by_reason.setdefault(kind, []).append(sk)
    msg.warn(f"{len(skipped)} record(s) skipped whole, {n_read} read:")
    for kind, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        where = ", ".join(f"{Path(sk.path).name}:{sk.line}" for sk in items[:5]) + (" ..." if len(items) > 5 else "")
        msg.text(f"  {len(items)} x {kind} ({where})")
    if strict:
        msg.fail("--strict: stopping because records were skipped", exits=1)


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
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when a record had to be skipped"),
) -> None:
    """Convert labelled data to a DocBin and report sentences and entities per label; records
    that cannot be read exactly are skipped whole and reported."""
    if skip < 0 or limit < 0:
        msg.fail("--skip and --limit take a number of sentences >= 0", exits=1)
    nlp = spacy.blank("en")
    skipped: List[Skipped] = []
    docs = read_docs(input_path, nlp, fmt, skipped)
    _report_skips(skipped, len(docs), strict)
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
    strict: bool = typer.Option(False, "--strict", help="Exit 1 (and write nothing) when a record had to be skipped"),
) -> None:
    """Build a demonstration store folder (docs, span embeddings, metadata). Records that cannot
    be read exactly (bad JSON, invalid UTF-8, malformed or misaligned spans, unknown labels with
    --labels) are skipped whole and reported: a sentence is never stored without one of its
    entities."""
    nlp = spacy.blank("en")
    skipped: List[Skipped] = []
    wanted = labels.split(",") if labels else None
    docs = [d for p in inputs for d in read_docs(p, nlp, skipped=skipped, labels=wanted)]
    _report_skips(skipped, len(docs), strict)
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
