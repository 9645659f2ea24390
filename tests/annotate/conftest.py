"""A real small pipeline for the annotation tests: the el4ner component with one member, the
smallest embedded model (SmolLM2-135M-Instruct), the embedded encoder, and a store of the
quickstart corpus. Built once per test session; each test gets it back with the store as built."""
from pathlib import Path
from typing import Iterator, List

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example

from spacy_el4ner.models import zoo
from spacy_el4ner.readers import read_docs

from .annotate_helpers import CONFIG, CORPUS, MEMBER, TEXTS, free_port


def models_ready() -> bool:
    return all(zoo.is_ready(name) for name in (MEMBER, "all-minilm-l6-v2"))


@pytest.fixture(scope="session")
def small_nlp_built() -> Language:
    if not models_ready():
        pytest.skip("embedded models not installed: run `python -m spacy_el4ner models pull`")
    nlp = spacy.blank("en")
    nlp.add_pipe("el4ner", config=CONFIG)
    docs = read_docs(CORPUS, nlp)
    nlp.initialize(get_examples=lambda: [Example(nlp.make_doc(d.text), d) for d in docs])
    return nlp


@pytest.fixture
def small_nlp(small_nlp_built) -> Iterator[Language]:
    """The pipeline with its store as built (tests add demonstrations to it)."""
    pipe = small_nlp_built.get_pipe("el4ner")
    initial: List = list(pipe.store.docs)
    yield small_nlp_built
    pipe.store.reset(initial)


@pytest.fixture(scope="session")
def pipeline_dir(small_nlp_built, tmp_path_factory) -> Path:
    """The pipeline saved with nlp.to_disk, for the commands."""
    path = tmp_path_factory.mktemp("pipeline") / "nlp"
    small_nlp_built.to_disk(path)
    return path


@pytest.fixture
def texts_file(tmp_path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf8")
    return path


@pytest.fixture
def live_server():
    """live_server(app) -> base URL: the app on a real uvicorn at 127.0.0.1 (a thread), stopped
    after the test."""
    import threading
    import time

    import uvicorn

    started = []

    def start(app) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)
