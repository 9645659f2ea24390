"""The OpenAI-compatible backend against a real vLLM server (a GPU's, or vLLM's CPU build).

Runs when ``EL4NER_VLLM_URL`` names a server that serves SmolLM2-135M-Instruct as
``EL4NER_VLLM_MODEL`` (default ``smollm2-135m-instruct``) in float32;
``bash benchmarks/vllm_check.sh`` installs vLLM's CPU build in its own environment, starts it on
127.0.0.1 with the model's converted folder and runs this module. Elsewhere it is skipped.

What it checks: vLLM's ``prompt_logprobs`` and ``echo`` scoring give the log-probabilities the
transformers engine computes from the same weights; greedy answers agree; the pipeline runs with
its members on the server.
"""
import os

import pytest

from spacy_el4ner.models import zoo
from spacy_el4ner.models.openai import OpenAIModel

URL = os.environ.get("EL4NER_VLLM_URL")
SERVED = os.environ.get("EL4NER_VLLM_MODEL", "smollm2-135m-instruct")
SMOL = "smollm2-135m-instruct"

pytestmark = pytest.mark.skipif(not URL, reason="no vLLM server: EL4NER_VLLM_URL unset (bash benchmarks/vllm_check.sh)")

PROMPTS = [
    [
        {"role": "system", "content": "You give the type of entity mentions in a text. Answer with one word: person, location, corporation."},
        {"role": "user", "content": 'Text: Tim Cook visited Berlin to meet Siemens executives.\nWhat is the type of "Berlin"?'},
    ],
    [
        {"role": "system", "content": "You check entity annotations."},
        {"role": "user", "content": 'Text: Angela Merkel met Emmanuel Macron in Paris.\nIn this text, is "Paris" an entity of type person? Answer Yes or No.'},
    ],
    "Name three cities in France:",
]
CONTINUATIONS = [["person", "location", "corporation"], ["Yes", "No"], [" Paris", " Lyon, Marseille", " Tokyo"]]


def _server(**kw) -> OpenAIModel:
    return OpenAIModel(SERVED, base_url=URL, template_from=SMOL, **kw)


@pytest.fixture(scope="module")
def local():
    from spacy_el4ner.models.hf import HFModel

    if not zoo.is_ready(SMOL):
        pytest.skip(f"{SMOL} not converted: python -m spacy_el4ner models pull")
    return HFModel(SMOL, dtype="float32")


@pytest.mark.parametrize("scoring", ["prompt_logprobs", "echo"])
def test_scores_match_the_transformers_engine(local, scoring):
    remote = _server(scoring=scoring, concurrency=4).score(PROMPTS, CONTINUATIONS)
    here = local.score(PROMPTS, CONTINUATIONS)
    for r, h, conts in zip(remote, here, CONTINUATIONS):
        assert len(r) == len(conts)
        # the same float32 weights on two engines (2.5e-5 nats apart on vLLM's CPU build): the same
        # ranking, the same log-probabilities; a misaligned token would move a score by whole nats
        assert max(range(len(r)), key=r.__getitem__) == max(range(len(h)), key=h.__getitem__), (r, h)
        for a, b in zip(r, h):
            assert abs(a - b) < 0.02, (r, h)


def test_greedy_answers_match_the_transformers_engine(local):
    prompts = PROMPTS[:2] + ["Say hello.", "List the names in: Tim Cook visited Berlin."]
    remote = _server(concurrency=4).generate(prompts, max_new_tokens=12, stop=["]", "\n"], answer_prefix='["')
    here = local.generate(prompts, max_new_tokens=12, stop=["]", "\n"], answer_prefix='["')
    assert sum(a == b for a, b in zip(remote, here)) >= len(prompts) - 1, (remote, here)


def test_concurrency_does_not_change_answers():
    prompts = [f"Name a city in country number {i}." for i in range(8)]
    one = _server(concurrency=1).generate(prompts, max_new_tokens=8)
    many = _server(concurrency=8).generate(prompts, max_new_tokens=8)
    assert sum(a == b for a, b in zip(one, many)) >= 7, (one, many)


def test_the_pipeline_with_its_members_on_the_server(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    config = {
        "labels": ["person", "location", "corporation"],
        "ensemble": {
            "@el4ner_members": "el4ner.Members.v1",
            "members": {
                "smol": {
                    "@el4ner_members": "el4ner.Member.v1",
                    "verifier": True,
                    "model": {
                        "@el4ner_models": "el4ner.OpenAIModel.v1", "model": SERVED, "base_url": URL,
                        "template_from": SMOL, "scoring": "prompt_logprobs",
                    },
                }
            },
        },
    }
    nlp.add_pipe("el4ner", config=config)
    from spacy.training import Example

    from spacy_el4ner.readers import read_docs

    train = read_docs("corpus/quickstart.jsonl", nlp)
    nlp.initialize(get_examples=lambda: [Example(nlp.make_doc(d.text), d) for d in train])
    doc = nlp("Tim Cook visited Berlin to meet Siemens executives.")
    pipe = nlp.get_pipe("el4ner")
    stats = pipe.members["smol"].stats
    assert stats["forward_passes"] > 0 and stats["prompt_tokens"] > 0
    assert doc.spans["el4ner"], "the server's member found no candidate"
    assert all(e.label_ in ("person", "location", "corporation") for e in doc.ents)
