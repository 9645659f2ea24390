"""The annotation loop: pre-annotated tasks (``tasks``), a SQLite dataset (``db``), the review
session (``review``) and its web app (``app``)."""
from .db import Database, default_db
from .review import Review, find_el4ner
from .tasks import clean_spans, doc_from_example, input_hash, task_from_doc

__all__ = ["Database", "Review", "clean_spans", "default_db", "doc_from_example", "find_el4ner", "input_hash", "task_from_doc"]
