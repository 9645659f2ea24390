"""CLLMFS training on a CUDA GPU (tiny random-weight Llama): the loss goes down and the adapter
scores the same on the GPU and on the CPU. Skipped where torch sees no GPU (CI)."""
import json

import pytest
import spacy
import torch

from spacy_el4ner.finetune.format import build_messages, format_answer
from spacy_el4ner.finetune.train import META_FILE, FinetuneConfig, train
from spacy_el4ner.models.hf import HFModel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LABELS = ["PER", "ORG", "LOC"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cllmfs_trains_on_the_gpu(tiny_llm_path, tmp_path, dtype):
    from conftest import make_labelled_docs

    docs = make_labelled_docs(spacy.blank("en"))
    out = tmp_path / "adapter"
    cfg = FinetuneConfig(
        base=tiny_llm_path, output_dir=str(out), epochs=3, lr=1e-2, lora_r=4, lora_alpha=8, lora_dropout=0.0,
        lam=0.5, temperature=0.5, grad_accum=1, batch_size=4, progress=False, eval_limit=0, dtype=dtype,
    )  # fmt: skip
    train(cfg, docs, None, LABELS)
    meta = json.loads((out / META_FILE).read_text())
    losses = [e["total"] for e in meta["losses"]]
    assert all(loss == loss for loss in losses)  # no NaN
    assert losses[-1] < losses[0]
    assert any(e["contrastive"] for e in meta["losses"])
    prompt = build_messages("Barack Obama visited Paris and London last year.", "LOC")
    conts = [[format_answer(["Paris", "London"]), format_answer([])]]
    on_gpu = HFModel(tiny_llm_path, adapter=str(out), dtype="float32", device="cuda").score([prompt], conts)[0]
    on_cpu = HFModel(tiny_llm_path, adapter=str(out), dtype="float32", device="cpu").score([prompt], conts)[0]
    assert all(abs(a - b) < 1e-3 for a, b in zip(on_gpu, on_cpu))
