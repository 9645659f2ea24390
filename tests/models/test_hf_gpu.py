"""The transformers backend on a CUDA GPU: every decoding and scoring path gives the CPU's
answers (float32, tiny random-weight Llama from conftest). Skipped where torch sees no GPU (CI)."""
import pytest
import torch

from spacy_el4ner.models.hf import HFModel
from spacy_el4ner.stages.extract import SEPARATORS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SYSTEM = "You are a careful named entity recognizer. List every person, place and company in the text."
TEXTS = ["Apple hired Tim Cook.", "Paris", "Barack Obama visited London last year.", "The Nile flows north.", "Hi", "a"]
PROMPTS = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Text: {t}"}] for t in TEXTS] + ["Text: Obama", "Paris"]
LABELS = ["PER", "ORG", "LOC", "none of these"]


def test_device_none_picks_the_gpu_and_batched_scoring(tiny_llm_path):
    model = HFModel(tiny_llm_path, dtype="float32")
    assert model.model.device.type == "cuda"
    assert model._scoring_mode() == "on"
    assert HFModel(tiny_llm_path, dtype="float32", device="cpu")._scoring_mode() == "packed"


@pytest.mark.parametrize("shrink,draft,constrained", [(True, 2, False), (True, 0, False), (False, 0, False), (True, 2, True)])
def test_generate_gives_the_cpu_answers(tiny_llm_path, shrink, draft, constrained):
    texts = TEXTS + ["Obama", "Paris"]
    kwargs = {"constrain_to": texts, "separators": SEPARATORS} if constrained else {}
    answers = {}
    for device in ("cpu", "cuda"):
        model = HFModel(tiny_llm_path, dtype="float32", device=device, batch_size=3, draft_tokens=draft)
        model.shrink_batches = shrink
        runs = ((16, ()), (16, ("a",)), (48, ()))  # 48 tokens: some rows loop and are stopped
        answers[device] = [model.generate(PROMPTS, max_new_tokens=n, stop=stop, **kwargs) for n, stop in runs]
    assert answers["cuda"] == answers["cpu"]
    assert len({a for run in answers["cuda"] for a in run}) > 5  # rows of different lengths


@pytest.mark.parametrize("mode,share", [("on", True), ("packed", True), ("off", True), ("on", False)])
def test_scores_match_the_cpu_in_every_mode(tiny_llm_path, mode, share):
    conts = [LABELS if i % 2 else ["Yes", "No"] for i in range(len(PROMPTS))]
    reference = HFModel(tiny_llm_path, dtype="float32", device="cpu", share_prefix=False).score(PROMPTS, conts)
    model = HFModel(tiny_llm_path, dtype="float32", device="cuda", score_batching=mode, share_prefix=share, batch_size=3)
    first = model.score(PROMPTS, conts)
    again = model.score(PROMPTS, conts)  # packed: from the kept key/value caches of the prefixes
    for got in (first, again):
        assert [len(r) for r in got] == [len(c) for c in conts]
        worst = max(abs(a - b) for r, s in zip(got, reference) for a, b in zip(r, s))
        assert worst < 1e-3, worst


def test_bfloat16_on_the_gpu_stays_near_float32(tiny_llm_path):
    conts = [LABELS] * len(PROMPTS)
    reference = HFModel(tiny_llm_path, dtype="float32", device="cpu").score(PROMPTS, conts)
    for mode in ("on", "packed"):
        got = HFModel(tiny_llm_path, dtype="bfloat16", device="cuda", score_batching=mode).score(PROMPTS, conts)
        assert max(abs(a - b) for r, s in zip(got, reference) for a, b in zip(r, s)) < 0.3
    assert all(isinstance(a, str) for a in HFModel(tiny_llm_path, dtype="bfloat16", device="cuda").generate(PROMPTS, max_new_tokens=8))
