"""The el4ner component with a tiny random-weight member on a CUDA GPU: the same entities and
candidate scores as on the CPU. Skipped where torch sees no GPU (CI)."""
import pytest
import spacy
import torch
from spacy.training import Example

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LABELS = ["PER", "ORG", "LOC"]
TEXTS = ["Tim Cook flew to Paris.", "", "Angela Merkel met Emmanuel Macron in Berlin. " * 3, "Apple hired Tim Cook in Cupertino."]


def run(device, tiny_llm_path, tiny_bert_path, labelled_docs):
    nlp = spacy.blank("en")
    hf = {"@el4ner_models": "el4ner.HFModel.v1", "name": tiny_llm_path, "dtype": "float32", "device": device, "batch_size": 4, "max_context": 1024}
    cfg = {
        "labels": LABELS,
        "members": {
            "@el4ner_models": "el4ner.EnsembleOf.v1",
            "members": {"tiny": hf, "fake": {"@el4ner_models": "test.FakeMember.v1", "name": "fake", "surfaces": ["Tim Cook", "Paris", "Berlin"]}},
        },
        "encoder": {"@el4ner_encoders": "el4ner.HFEncoder.v1", "name": tiny_bert_path},
        "retriever": {"@el4ner_retrievers": "el4ner.SpanSimRetriever.v1", "k": 2, "pre_extraction": "llm"},
        "verifier": "tiny",
        "validation_threshold": 0.0,
        "max_new_tokens": 8,
    }
    pipe = nlp.add_pipe("el4ner", config=cfg)
    nlp.initialize(lambda: [Example(nlp.make_doc(d.text), d) for d in labelled_docs])
    docs = list(nlp.pipe(TEXTS, batch_size=2))
    return pipe, docs


def test_pipeline_on_the_gpu_matches_the_cpu(tiny_llm_path, tiny_bert_path, labelled_docs):
    gpu_pipe, gpu_docs = run(None, tiny_llm_path, tiny_bert_path, labelled_docs)  # None: cuda when available
    assert gpu_pipe.members["tiny"].model.device.type == "cuda"
    _, cpu_docs = run("cpu", tiny_llm_path, tiny_bert_path, labelled_docs)
    assert sum(len(d.spans["el4ner"]) for d in gpu_docs) >= 3
    for g, c in zip(gpu_docs, cpu_docs):
        assert [(e.text, e.label_) for e in g.ents] == [(e.text, e.label_) for e in c.ents]
        dg, dc = g.spans["el4ner"].attrs["details"], c.spans["el4ner"].attrs["details"]
        assert [d["text"] for d in dg] == [d["text"] for d in dc]
        for a, b in zip(dg, dc):
            for member, probs in a["label_probs"].items():
                assert probs.keys() == b["label_probs"][member].keys()
                assert all(abs(probs[k] - b["label_probs"][member][k]) < 1e-3 for k in probs)
