"""A peft LoRA adapter on llama.cpp: converted to llama.cpp's LoRA GGUF and applied over the base
GGUF as the package ships it, it changes the model as the same adapter changes it on transformers.

The real models (SmolLM2, a Llama: its query/key updates must be reordered as llama.cpp's converter
reorders the base weights) need llama-cpp-python and ``models pull``; skipped with the reason
otherwise. The checks compare how far the adapter moves each score on each engine (log-probability
changes of several nats), so the quantised base's own small differences (about 0.1) do not decide.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from spacy_el4ner.models import zoo
from spacy_el4ner.models.lora_gguf import MODULES, _scaling, convert, lora_gguf
from spacy_el4ner.models.protocol import ModelLoadError

SMOL = "smollm2-135m-instruct"
PROMPTS = [
    [{"role": "user", "content": f"List the cities in: {t}"}]
    for t in ("Tim Cook flew from Berlin to Paris.", "The Nile flows through Cairo.", "Nothing here.")
]
CONTS = [["Berlin", "Paris", "Tim Cook", "Cairo", "[]"]] * len(PROMPTS)


def _gguf_or_skip(name: str):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed: pip install -e '.[llama]'")
    try:
        return zoo.gguf_path(name)
    except ModelLoadError:
        pytest.skip(f"{name} not installed: run `python -m spacy_el4ner models pull {name}`")


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory):
    """A LoRA on every attention and MLP projection of SmolLM2 with random (not zero) updates:
    a large, known change of the model."""
    _gguf_or_skip(SMOL)
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(zoo.ensure(SMOL), torch_dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=list(MODULES), init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter") / "random"
    get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.mark.slow
def test_adapter_moves_llama_cpp_scores_as_it_moves_transformers(random_adapter):
    from spacy_el4ner.models.hf import HFModel
    from spacy_el4ner.models.llamacpp import LlamaCppModel

    moved = {}
    for engine, make in (("hf", lambda a: HFModel(SMOL, dtype="float32", adapter=a)), ("llama", lambda a: LlamaCppModel(SMOL, adapter=a, parallel=2))):
        base = np.array(make(None).score(PROMPTS, CONTS))
        tuned = np.array(make(str(random_adapter)).score(PROMPTS, CONTS))
        moved[engine] = (tuned - base).ravel()
    assert np.abs(moved["hf"]).mean() > 1.0  # the adapter changes the model a lot
    assert np.corrcoef(moved["hf"], moved["llama"])[0, 1] > 0.98
    assert np.abs(moved["hf"] - moved["llama"]).mean() < 0.3 * np.abs(moved["hf"]).mean()
    model = LlamaCppModel(SMOL, adapter=str(random_adapter))
    assert "adapter=" in repr(model) and model.cache_adapter() == str(random_adapter)


@pytest.mark.slow
def test_conversion_is_kept_per_content_and_checked_against_the_base(random_adapter, tmp_path):
    base = _gguf_or_skip(SMOL)
    first = lora_gguf(str(random_adapter), base, tmp_path)
    assert lora_gguf(str(random_adapter), base, tmp_path) == first  # converted once
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        (copy / f).write_bytes((random_adapter / f).read_bytes())
    assert lora_gguf(str(copy), base, tmp_path) == first  # known by content, not folder
    from gguf import GGUFReader

    reader = GGUFReader(str(first))
    names = {t.name for t in reader.tensors}
    assert "blk.0.attn_q.weight.lora_a" in names and "blk.29.ffn_down.weight.lora_b" in names
    assert len(names) == 2 * 7 * 30
    # the same adapter over another model's layers: refused with the reason
    qwen = zoo.ZOO["qwen2.5-coder-0.5b-instruct"]
    try:
        other = zoo.gguf_path(qwen.name)
    except ModelLoadError:
        return
    with pytest.raises(ModelLoadError, match="does not fit"):
        convert(random_adapter, other, tmp_path / "bad.gguf")


def _adapter(tmp_path, config=None, tensors=None):
    from safetensors.numpy import save_file

    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    cfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "bias": "none"}
    cfg.update(config or {})
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_{}.weight"
    default = {key.format("A"): np.zeros((2, 4), np.float32), key.format("B"): np.zeros((4, 2), np.float32)}
    save_file(tensors if tensors is not None else default, str(folder / "adapter_model.safetensors"))
    return folder


def test_what_llama_cpp_cannot_apply_is_refused_with_the_reason(tmp_path):
    base = tmp_path / "base.gguf"  # never read: each adapter fails before the base is opened
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"E140.*adapter_config.json, adapter_model.safetensors"):
        lora_gguf(str(empty), base, tmp_path)
    for config in ({"use_dora": True}, {"bias": "lora_only"}, {"modules_to_save": ["lm_head"]}, {"peft_type": "IA3"}):
        with pytest.raises(ModelLoadError, match="E141"):
            convert(_adapter(tmp_path, config), base, tmp_path / "out.gguf")
    embed = {"base_model.model.model.embed_tokens.lora_embedding_A": np.zeros((2, 4), np.float32)}
    with pytest.raises(ModelLoadError, match="E142"):
        convert(_adapter(tmp_path, tensors=embed), base, tmp_path / "out.gguf")


@pytest.mark.slow
def test_adapter_member_on_llama_cpp_in_a_saved_pipeline(random_adapter, tmp_path):
    """A fine-tuned-prompt member with its adapter and constrained decoding on llama.cpp, through
    add_pipe, nlp() and a saved pipeline (which carries the adapter) loaded back."""
    import spacy

    from spacy_el4ner.models.llamacpp import LlamaCppModel

    member = {
        "@el4ner_members": "el4ner.Member.v1", "verifier": True, "prompt": "fine-tuned", "constrained": True,
        "model": {"@el4ner_models": "el4ner.LlamaCppModel.v1", "name": SMOL, "adapter": str(random_adapter), "parallel": 4},
    }
    config = {
        "labels": ["person", "location"], "retriever": None, "validate": None,
        "ensemble": {"@el4ner_members": "el4ner.Members.v1", "members": {"smol": member}},
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("el4ner", config=config)
    nlp.initialize()
    text = "Tim Cook visited Berlin to meet Angela Merkel."
    doc = nlp(text)
    model = nlp.get_pipe("el4ner").members["smol"]
    assert isinstance(model, LlamaCppModel) and model.adapter == str(random_adapter)
    assert all(text[s.start_char : s.end_char] == s.text for s in doc.spans["el4ner"])
    nlp.to_disk(tmp_path / "pipeline")
    copies = list((tmp_path / "pipeline" / "el4ner" / "adapters").glob("*/adapter_model.safetensors"))
    assert len(copies) == 1
    loaded = spacy.load(tmp_path / "pipeline")
    again = loaded(text)
    assert Path(loaded.get_pipe("el4ner").members["smol"].adapter).parent == copies[0].parent.parent
    assert [(e.text, e.label_) for e in again.ents] == [(e.text, e.label_) for e in doc.ents]


def test_scaling_follows_peft():
    """alpha / r, each update's own rank, rsLoRA's square root, alpha_pattern matched against the
    end of the module's path as peft matches it."""
    path = "base_model.model.model.layers.3.self_attn.q_proj"
    assert _scaling({"lora_alpha": 16}, path, 8) == 2.0
    assert _scaling({"lora_alpha": 16, "use_rslora": True}, path, 16) == 4.0
    assert _scaling({"lora_alpha": 16, "alpha_pattern": {"q_proj": 4}}, path, 8) == 0.5
    assert _scaling({"lora_alpha": 16, "alpha_pattern": {r"layers\.3\.self_attn\.q_proj": 32}}, path, 8) == 4.0
    assert _scaling({"lora_alpha": 16, "alpha_pattern": {"k_proj": 4}}, path, 8) == 2.0
