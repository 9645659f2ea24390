"""``review``: correct suggestions in the browser; every answer is saved at once and every
accepted sentence becomes a demonstration for the next suggestion."""
import logging
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from ..annotate.db import Database, check_name, default_db
from ..annotate.hosts import check_host
from ..annotate.review import Review, find_el4ner
from ..annotate.sources import read_texts
from ..errors import Errors, Warnings
from ..readers import Skipped
from .annotate import load_pipeline

logger = logging.getLogger("spacy_el4ner")


def review(
    dataset: str = typer.Argument(..., help="Dataset to save the answers in (created if new)"),
    source: Path = typer.Argument(..., help="Texts: .jsonl, .txt (one text a line) or .spacy"),
    pipeline: Path = typer.Option(..., "--pipeline", "-p", help="Saved pipeline folder (nlp.to_disk) or config.cfg with an el4ner component"),
    db: Optional[Path] = typer.Option(None, "--db", help="SQLite file (default: $SPACY_EL4NER_DB or ~/.spacy_el4ner/annotations.db)"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (loopback unless --allow-remote)"),
    port: int = typer.Option(8080, "--port", help="Port"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host (anyone who reaches it can change the dataset)"),
    exclude: List[str] = typer.Option([], "--exclude", help="Skip texts another dataset already holds (repeatable)"),
    save_store: Optional[Path] = typer.Option(None, "--save-store", help="Write the grown demonstration store here at the end"),
) -> None:
    """Serve the review page: one sentence at a time with its suggested entities; a accept,
    x reject, space ignore, backspace undo, 1-9 pick a label, select text to add a span. Answers
    go to DATASET at once; a restart resumes where it stopped."""
    skipped: List[Skipped] = []
    try:
        remote = check_host(host, allow_remote)
        check_name(dataset)
        for other in exclude:
            check_name(other)
        texts = read_texts(source, skipped)
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    try:
        from ..annotate.app import LOOPBACK_NAMES, make_app, serve
    except ImportError as err:
        msg.fail(Errors.E418.format(err=err), exits=1)
    if remote:
        msg.warn(Warnings.W401.format(dataset=dataset, host=host, port=port))
    nlp = load_pipeline(pipeline)
    try:
        pipe = find_el4ner(nlp, pipeline)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    database = Database(db or default_db())
    for other in exclude:
        if other not in database.datasets():
            msg.warn(f"--exclude {other}: no such dataset in {database.path} (datasets: {', '.join(database.datasets()) or 'none'})")
    session = Review(nlp, database, dataset, texts, exclude=exclude)
    done = database.counts(dataset)
    msg.info(f"Dataset {dataset} in {database.path}: {sum(done.values())} answered before; {len(pipe.store)} demonstrations in the store")
    shown = f"[{host}]" if ":" in host else host
    msg.good(f"Review at http://{shown}:{port}/  (Ctrl+C to stop)")
    try:
        allowed = None if remote else LOOPBACK_NAMES + [host]
        serve(make_app(session, allowed_hosts=allowed), host, port)
    except KeyboardInterrupt:  # uvicorn hands Ctrl+C on after shutting down: a normal stop here
        pass
    finally:
        _report(skipped, session, database)
        if save_store is not None:
            pipe.store.to_disk(save_store)
            msg.good(f"Store with {len(pipe.store)} demonstrations -> {save_store}")
        database.close()


def _report(skipped: List[Skipped], session: Review, database: Database) -> None:
    if skipped:
        msg.warn(f"{len(skipped)} source line(s) skipped: " + ", ".join(f"{Path(s.path).name}:{s.line} ({s.reason})" for s in skipped[:5]))
    counts = database.counts(session.dataset)
    msg.info(f"{session.counts()['session']} answer(s) this session; dataset {session.dataset}: {counts}")
