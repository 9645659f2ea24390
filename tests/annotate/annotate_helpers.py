"""Constants and helpers shared by the annotation tests. ``tests/annotate`` is a package, so its
conftest is ``annotate.conftest`` and never shadows the root ``conftest`` that other test folders
import from; test modules here import these names from this module."""
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "quickstart.jsonl"
LABELS = ["person", "location", "corporation"]
MEMBER = "smollm2-135m-instruct"
TEXTS = [
    "Tim Cook visited Berlin to meet Siemens executives.",
    "Elon Musk said Tesla will open a factory near Austin.",
    "Jeff Bezos flew from Seattle to London on Monday.",
    "Satya Nadella met engineers in Paris.",
    "Mary Barra said General Motors will hire in Detroit.",
    "Sundar Pichai spoke about Google in Tokyo.",
]
CONFIG = {
    "labels": LABELS,
    "ensemble": {"@el4ner_members": "el4ner.Ensemble.v1", "models": [MEMBER]},
    "retriever": {"@el4ner_retrievers": "el4ner.SentenceSimRetriever.v1", "k": 2, "max_empty": 1},
    "extract": {"max_new_tokens": 32},
    "validate": None,
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
