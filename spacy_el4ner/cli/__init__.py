"""Command line: ``python -m spacy_el4ner {models,convert,store,quickstart,evaluate,compare,calibrate,finetune,train-member,cache,annotate,review,db-out}``."""
import logging
import os

import typer

from .annotate import annotate, db_out
from .cache import cache_app
from .calibrate import calibrate
from .compare import compare
from .data import convert, store_app
from .evaluate import evaluate
from .finetune import finetune
from .models import models_app
from .quickstart import quickstart
from .review import review
from .train_member import train_member

app = typer.Typer(add_completion=False, no_args_is_help=True, help="spacy-el4ner: NER with an ensemble of small local LLMs")
app.add_typer(models_app, name="models")
app.add_typer(store_app, name="store")
app.add_typer(cache_app, name="cache")
app.command("convert")(convert)
app.command("evaluate")(evaluate)
app.command("compare")(compare)
app.command("calibrate")(calibrate)
app.command("quickstart")(quickstart)
app.command("finetune")(finetune)
app.command("train-member")(train_member)
app.command("annotate")(annotate)
app.command("review")(review)
app.command("db-out")(db_out)


def main() -> None:
    logging.basicConfig(level=os.environ.get("SPACY_EL4NER_LOGLEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
