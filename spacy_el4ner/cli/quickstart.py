"""``quickstart``: the README example on the embedded default models."""
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
import typer
from spacy.training import Example
from wasabi import msg

from ..readers import read_docs

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "quickstart.jsonl"
TEXTS = [
    "Tim Cook visited Berlin to meet Siemens executives.",
    "Elon Musk said Tesla will open a factory near Austin.",
]


def quickstart(
    texts: List[str] = typer.Argument(None, help="Texts to annotate (default: the README examples)"),
    examples: Path = typer.Option(CORPUS, "--examples", help="Labelled examples (JSONL, .spacy or BIO)"),
    members: Optional[str] = typer.Option(None, "--members", help="Comma-separated member models"),
    output: Optional[Path] = typer.Option(None, "--output", help="Save the pipeline here (nlp.to_disk)"),
    dtype: str = typer.Option("fastest", "--dtype", help="Member weights: fastest (default), bfloat16, float32, float16, int8 (CPU: about 1.6x faster than float32 where the CPU lacks native bf16)"),
) -> None:
    """Build an el4ner pipeline from a few labelled examples and annotate texts."""
    nlp = spacy.blank("en")
    # a partial members block: the component's default config fills in the rest
    config: Dict[str, Any] = {"labels": ["person", "location", "corporation"], "ensemble": {"dtype": dtype}}
    if members:
        config["ensemble"]["models"] = members.split(",")
    nlp.add_pipe("el4ner", config=config)
    docs = read_docs(examples, nlp)
    egs = [Example(nlp.make_doc(d.text), d) for d in docs]
    nlp.initialize(get_examples=lambda: egs)
    t0 = time.perf_counter()
    msg.info("Loading models (converted once on first use) ...")
    nlp("Warm up.")
    msg.info(f"Models ready in {time.perf_counter() - t0:.1f}s")
    for text in texts or TEXTS:
        t0 = time.perf_counter()
        doc = nlp(text)
        dt = time.perf_counter() - t0
        ents = ", ".join(f"{e.text} ({e.label_})" for e in doc.ents) or "(none)"
        msg.text(f"{text}\n  -> {ents}   [{dt:.1f}s]")
    if output:
        nlp.to_disk(output)
        msg.good(f"Saved pipeline to {output}")
