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
    from conftest import tiny_hf_config

    nlp = spacy.blank("en")
    cfg = tiny_hf_config(tiny_llm_path, tiny_bert_path, LABELS, device, ["Tim Cook", "Paris", "Berlin"])
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
