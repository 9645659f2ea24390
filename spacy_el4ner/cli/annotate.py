"""``annotate`` (texts -> pre-annotated task JSONL) and ``db-out`` (a dataset -> JSONL)."""
from pathlib import Path
from typing import List, Optional

import spacy
import srsly
import typer
from tqdm import tqdm
from wasabi import msg

from ..annotate.db import Database, default_db
from ..annotate.review import find_el4ner
from ..annotate.sources import read_texts
from ..annotate.tasks import input_hash, order_by_uncertainty, task_from_doc
from ..readers import Skipped
from .data import _report_skips

ORDERS = ("source", "uncertainty")


def load_pipeline(path: Path):
    """A saved pipeline folder (``nlp.to_disk``), or a ``config.cfg`` assembled as ``spacy
    assemble`` does (its store from the config's ``store.path``). Exits with the reason when it
    cannot be loaded."""
    try:
        if path.is_file() and path.suffix == ".cfg":
            return spacy.util.load_model_from_config(spacy.util.load_config(path), auto_fill=True)
        return spacy.load(path)
    except (OSError, ValueError) as err:
        msg.fail(f"Could not load the pipeline {path}: {err}", exits=1)


def annotate(
    source: Path = typer.Argument(..., help="Texts: .jsonl ({\"text\": ...} a line), .txt (one text a line) or .spacy"),
    pipeline: Path = typer.Option(..., "--pipeline", "-p", help="Saved pipeline folder (nlp.to_disk) or config.cfg with an el4ner component"),
    output: Path = typer.Option(..., "--output", "-o", help="Task JSONL to write (Prodigy's format)"),
    order: str = typer.Option("source", "--order", help=f"One of {ORDERS}: uncertainty puts the lowest-confidence sentences first"),
    batch_size: int = typer.Option(8, "--batch-size", help="Texts per batch"),
    limit: int = typer.Option(0, "--limit", help="Annotate only the first N texts (0: all)"),
) -> None:
    """Pre-annotate texts: one Prodigy-compatible task per text (tokens, spans with their
    confidence, every candidate with the members' votes in meta, _input_hash/_task_hash). Lines
    that cannot be read (invalid UTF-8, lone surrogates, not JSON) are skipped and reported; a
    text seen before is left out."""
    if order not in ORDERS:
        msg.fail(f"--order must be one of {ORDERS}, not {order!r}", exits=1)
    skipped: List[Skipped] = []
    try:
        texts = list(read_texts(source, skipped))
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    _report_skips(skipped, len(texts), strict=False)
    seen = set()
    unique = []
    for text, meta in texts:
        h = input_hash(text)
        if h not in seen:
            seen.add(h)
            unique.append((text, meta))
    if len(unique) < len(texts):
        msg.info(f"{len(texts) - len(unique)} repeated text(s) left out")
    if limit:
        unique = unique[:limit]
    nlp = load_pipeline(pipeline)
    try:
        pipe = find_el4ner(nlp, pipeline)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    tasks = []
    stream = nlp.pipe(unique, as_tuples=True, batch_size=batch_size)
    for doc, meta in tqdm(stream, total=len(unique), desc="annotate", unit="text"):
        tasks.append(task_from_doc(doc, pipe.spans_key, meta))
    if order == "uncertainty":
        tasks = order_by_uncertainty(tasks)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(output, tasks)
    n_spans = sum(len(t["spans"]) for t in tasks)
    msg.good(f"{len(tasks)} task(s) with {n_spans} suggested span(s) -> {output}")


def db_out(
    dataset: str = typer.Argument(..., help="Dataset name"),
    output: Path = typer.Argument(..., help="JSONL file to write"),
    db: Optional[Path] = typer.Option(None, "--db", help="SQLite file (default: $SPACY_EL4NER_DB or ~/.spacy_el4ner/annotations.db)"),
) -> None:
    """Export a dataset as Prodigy-style JSONL (every answer: accept, reject, ignore). `store build`
    reads it back, keeping the accepted ones."""
    path = db or default_db()
    if not path.exists():
        msg.fail(f"No database at {path}: give --db", exits=1)
    database = Database(path)
    try:
        n = database.export(dataset, output)
        counts = database.counts(dataset)
    except (KeyError, ValueError) as err:
        msg.fail(str(err.args[0]) if err.args else str(err), exits=1)
    finally:
        database.close()
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "empty"
    msg.good(f"{n} example(s) of {dataset} -> {output} ({summary})")
