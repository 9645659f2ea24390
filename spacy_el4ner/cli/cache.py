"""``cache export`` / ``cache import``: carry the response cache of a long run to another machine."""
from datetime import datetime
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from ..models.cache import ResponseCache

cache_app = typer.Typer(no_args_is_help=True, help="The on-disk cache of model responses (evaluate --cache)")


def parse_since(since: str) -> float:
    """``since`` as epoch seconds: a number, or an ISO date/time (``2026-11-28T13:00``, local time unless it says)."""
    if not since:
        return 0.0
    try:
        return float(since)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(since)
    except ValueError as err:
        raise typer.BadParameter(f"--since {since!r}: give epoch seconds or an ISO date/time such as 2026-11-28T13:00") from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return when.timestamp()


@cache_app.command("export")
def export(
    cache: Path = typer.Argument(..., help="The cache folder (evaluate --cache)"),
    output: Path = typer.Argument(..., help="The file to write (gzipped JSON lines, e.g. responses.jsonl.gz)"),
    since: str = typer.Option("", "--since", help="Only entries written from then on (epoch seconds or ISO date/time, local time)"),
) -> None:
    """Write the cache's answers to one file, to commit or copy: `cache import` adds them to a
    cache on a fresh machine, so a run resumes there without asking the models again."""
    if not (cache / "responses.sqlite").is_file():
        msg.fail(f"{cache}: no response cache there (responses.sqlite); give the folder of evaluate --cache", exits=1)
    output.parent.mkdir(parents=True, exist_ok=True)
    n = ResponseCache(cache).export(output, since=parse_since(since))
    msg.good(f"Wrote {n} cached answers to {output} ({output.stat().st_size / 1e6:.1f} MB)")


@cache_app.command("import")
def import_(
    cache: Path = typer.Argument(..., help="The cache folder to add to (created if missing)"),
    files: List[Path] = typer.Argument(..., help="Files that `cache export` wrote"),
) -> None:
    """Add exported answers to a cache (entries already there are kept). Answers of adapters are
    used only where this machine's adapter weights are the same as where they were cached."""
    store = ResponseCache(cache)
    for path in files:
        try:
            n = store.import_(path)
        except ValueError as err:
            msg.fail(str(err), exits=1)
        msg.good(f"{path}: added {n} answers to {cache}")
