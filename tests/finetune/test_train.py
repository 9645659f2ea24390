"""CLLMFS training on the tiny random-weight Llama: loss goes down, lambda=0 is plain LoRA, the
adapter round-trips through HFModel and a pipeline naming it serializes."""
import json

import pytest
import spacy
import torch
from spacy.tokens import DocBin

import spacy_el4ner.finetune.train as train_module
from spacy_el4ner.finetune import generate as generate_module
from spacy_el4ner.finetune.data import build_records
from spacy_el4ner.finetune.format import format_answer
from spacy_el4ner.finetune.train import META_FILE, FinetuneConfig, default_layer, evaluate_losses, train
from spacy_el4ner.models.hf import HFModel
from spacy_el4ner.store import DemoStore

LABELS = ["PER", "ORG", "LOC"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(path, out, **kw):
    settings = dict(
        base=path,
        output_dir=str(out),
        epochs=3,
        lr=1e-2,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lam=0.5,
        temperature=0.5,
        grad_accum=1,
        batch_size=4,
        progress=False,
        eval_limit=2,
        eval_max_new_tokens=12,
    )
    settings.update(kw)
    return FinetuneConfig(**settings)


@pytest.fixture(scope="module")
def docs():
    from conftest import make_labelled_docs

    return make_labelled_docs(spacy.blank("en"))


@pytest.fixture(scope="module")
def cllmfs(tiny_llm_path, docs, tmp_path_factory):
    """A CLLMFS adapter (lambda = 0.5) with a dev evaluation per epoch."""
    out = tmp_path_factory.mktemp("cllmfs")
    cfg = config(tiny_llm_path, out, eval_before=True)
    calls = []
    real = train_module.info_nce

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    train_module.info_nce = spy
    try:
        assert train(cfg, docs, dev_docs=docs[:2], labels=LABELS) == out
    finally:
        train_module.info_nce = real
    return out, cfg, len(calls)


def _base_and_tuned(path, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32), str(adapter)).eval()
    return base, tuned


def test_cllmfs_reduces_the_loss(cllmfs, tiny_llm_path, docs):
    out, cfg, n_calls = cllmfs
    assert n_calls == 3 * 3  # info_nce once per batch: 12 records / 4 per batch, 3 epochs
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_path)
    records = build_records(docs, tok, LABELS, negatives=cfg.negatives, seed=cfg.seed)
    base, tuned = _base_and_tuned(tiny_llm_path, out)
    layer = default_layer(2)
    before = evaluate_losses(base, records, tok.pad_token_id, layer=layer, temperature=cfg.temperature, batch_size=4)
    after = evaluate_losses(tuned, records, tok.pad_token_id, layer=layer, temperature=cfg.temperature, batch_size=4)
    assert after["lm"] < before["lm"] - 0.3
    assert after["contrastive"] < before["contrastive"]
    meta = json.loads((out / META_FILE).read_text())
    losses = meta["losses"]
    assert [e["epoch"] for e in losses] == [1, 2, 3]
    assert losses[-1]["total"] < losses[0]["total"]
    assert all(e["contrastive"] is not None for e in losses)
    assert losses[0]["total"] == pytest.approx(losses[0]["lm"] + 0.5 * losses[0]["contrastive"], rel=1e-6)


def test_metadata_and_checkpoints(cllmfs, tiny_llm_path):
    out, cfg, _ = cllmfs
    meta = json.loads((out / META_FILE).read_text())
    assert meta["labels"] == LABELS
    assert meta["config"]["lam"] == 0.5 and meta["config"]["base"] == tiny_llm_path
    assert meta["layer"] == 1 and meta["num_layers"] == 2 and meta["n_records"] == 12
    assert [d["epoch"] for d in meta["dev"]] == [1, 2, 3]
    assert all(0.0 <= d["f1"] <= 1.0 and d["n_gold"] == 6 for d in meta["dev"])
    # the base model's score before training, on the same dev docs
    before = meta["dev_before"]
    assert before["n_gold"] == 6 and 0.0 <= before["f1"] <= 1.0 and before["seconds"] >= 0
    assert all(e["train_seconds"] > 0 for e in meta["losses"])
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    for epoch in (1, 2, 3):
        assert (out / f"checkpoint-epoch{epoch}" / "adapter_model.safetensors").exists()


def test_lambda_zero_is_plain_lora(tiny_llm_path, docs, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the contrastive term must not be computed when lambda = 0")

    monkeypatch.setattr(train_module, "info_nce", forbidden)
    monkeypatch.setattr(train_module, "span_representations", forbidden)
    monkeypatch.setattr(train_module, "contrastive_loss", forbidden)
    seen_hidden = []
    from transformers import LlamaForCausalLM

    real_forward = LlamaForCausalLM.forward

    def forward(self, *args, **kwargs):
        seen_hidden.append(bool(kwargs.get("output_hidden_states")))
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    out = train(config(tiny_llm_path, tmp_path / "lora", lam=0.0, checkpoints=False), docs, labels=LABELS)
    assert seen_hidden and not any(seen_hidden)
    meta = json.loads((out / META_FILE).read_text())
    assert meta["method"] == "LoRA" and meta["dev"] == []
    assert all(e["contrastive"] is None and e["total"] == e["lm"] for e in meta["losses"])
    assert not (out / "checkpoint-epoch1").exists()
    monkeypatch.undo()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_path)
    records = build_records(docs, tok, LABELS)
    base, tuned = _base_and_tuned(tiny_llm_path, out)
    assert evaluate_losses(tuned, records, tok.pad_token_id)["lm"] < evaluate_losses(base, records, tok.pad_token_id)["lm"] - 0.3


def test_adapter_round_trips_through_hfmodel(cllmfs, tiny_llm_path):
    from peft import PeftModel

    out, _, _ = cllmfs
    base = HFModel(tiny_llm_path, dtype="float32", device="cpu")
    tuned = HFModel(tiny_llm_path, adapter=str(out), dtype="float32", device="cpu")
    wrapped = HFModel(tiny_llm_path, adapter=str(out), dtype="float32", device="cpu", merge_adapter=False)
    # merged at load: a plain model again; unmerged: the peft wrapper
    assert not isinstance(tuned.model, PeftModel) and not isinstance(base.model, PeftModel)
    assert isinstance(wrapped.model, PeftModel)
    from spacy_el4ner.finetune.format import build_messages

    prompt = build_messages("Barack Obama visited Paris and London last year.", "LOC")
    conts = [[format_answer(["Paris", "London"]), format_answer([])]]
    s_base, s_tuned = base.score([prompt], conts)[0], tuned.score([prompt], conts)[0]
    assert all(abs(a - b) > 1e-3 for a, b in zip(s_base, s_tuned))
    # merging changes no score beyond float32 rounding, and the base model's weights stay as loaded
    s_wrapped = wrapped.score([prompt], conts)[0]
    assert all(abs(a - b) < 1e-4 for a, b in zip(s_tuned, s_wrapped))
    assert base.score([prompt], conts)[0] == s_base
    # training taught the answer format: the tuned model prefers the gold answer far more
    assert s_tuned[0] > s_base[0]
    g_base = base.generate([prompt], max_new_tokens=8)
    g_tuned = tuned.generate([prompt], max_new_tokens=8)
    assert g_base != g_tuned
    # the inference helper through HFModel: character spans of the Doc, labels of the set
    doc = spacy.blank("en")("Barack Obama visited Paris and London last year.")
    found = generate_module.extract_with_model(tuned, [doc], LABELS, max_new_tokens=12)
    assert len(found) == 1
    for start, end, label in found[0]:
        assert 0 <= start < end <= len(doc.text) and label in LABELS
    assert all(s.label_ in LABELS for s in generate_module.to_doc_spans(doc, found[0]))


def test_pipeline_with_adapter_member_serializes(cllmfs, tiny_llm_path, tmp_path):
    from peft import PeftModel

    import shutil

    out, _, _ = cllmfs
    # a copy of the adapter that goes away after saving: the saved pipeline must carry its own
    adapter = tmp_path / "adapter"
    shutil.copytree(out, adapter)
    nlp = spacy.blank("en")
    member = {"@el4ner_models": "el4ner.HFModel.v1", "name": tiny_llm_path, "adapter": str(adapter), "dtype": "float32", "device": "cpu"}
    nlp.add_pipe(
        "el4ner",
        config={
            "labels": LABELS,
            "ensemble": {"@el4ner_members": "el4ner.Members.v1", "members": {
                "tuned": {"@el4ner_members": "el4ner.Member.v1", "model": member, "verifier": True}}},
            "encoder": {"@el4ner_encoders": "test.HashEmbedder.v1"},
            "extract": {"max_new_tokens": 8},
        },
    )
    nlp.to_disk(tmp_path / "pipeline")
    copy = tmp_path / "pipeline" / "el4ner" / "adapters" / "tuned"
    assert (copy / "adapter_config.json").is_file() and (copy / "adapter_model.safetensors").is_file()
    assert not any(p.name.startswith("checkpoint") for p in copy.iterdir())
    shutil.rmtree(adapter)
    loaded = spacy.load(tmp_path / "pipeline")
    saved = loaded.config["components"]["el4ner"]["ensemble"]["members"]["tuned"]["model"]
    assert saved["adapter"] == str(adapter) and saved["name"] == tiny_llm_path
    model = loaded.get_pipe("el4ner").members["tuned"]
    assert isinstance(model, HFModel) and model.adapter == str(copy)
    assert model.merge_adapter and not isinstance(model.model, PeftModel)
    # the adapter is in the weights: the loaded member differs from the bare base model
    bare = HFModel(tiny_llm_path, dtype="float32", device="cpu").model
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.model.state_dict()[q], bare.state_dict()[q])
    doc = loaded("Tim Cook flew to Paris.")
    assert all(e.label_ in LABELS for e in doc.ents)
    # saved again from where it was loaded: the copy stays as it is
    loaded.to_disk(tmp_path / "pipeline")
    assert (copy / "adapter_model.safetensors").is_file()


def test_cached_answers_follow_the_adapters_content(cllmfs, tiny_llm_path, tmp_path):
    import shutil

    from spacy_el4ner.finetune.format import build_messages
    from spacy_el4ner.models.cache import ResponseCache

    out, _, _ = cllmfs
    adapter = tmp_path / "adapter"
    shutil.copytree(out, adapter)
    prompt = build_messages("Barack Obama visited Paris and London last year.", "LOC")
    cache = ResponseCache(tmp_path / "cache")
    first = HFModel(tiny_llm_path, adapter=str(adapter), dtype="float32", device="cpu", cache=cache)
    answer = first.generate([prompt], max_new_tokens=8)
    assert first.stats["forward_passes"] > 0
    # the same adapter from another folder (a saved pipeline's copy): answered from the cache
    shutil.copytree(adapter, tmp_path / "copy")
    moved = HFModel(tiny_llm_path, adapter=str(tmp_path / "copy"), dtype="float32", device="cpu", cache=cache)
    assert moved.generate([prompt], max_new_tokens=8) == answer
    assert (moved.stats["forward_passes"], moved.stats["cache_hits"]) == (0, 1)
    # other weights in the first folder: asked again, not served the old answer
    from safetensors.torch import load_file, save_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    save_file({k: v * 2 for k, v in weights.items()}, str(adapter / "adapter_model.safetensors"))
    retrained = HFModel(tiny_llm_path, adapter=str(adapter), dtype="float32", device="cpu", cache=cache)
    retrained.generate([prompt], max_new_tokens=8)
    assert retrained.stats["cache_hits"] == 0 and retrained.stats["forward_passes"] > 0


def test_saving_a_member_whose_adapter_is_gone_warns(tiny_llm_path, tmp_path, caplog):
    from spacy_el4ner.models.adapters import save_adapters

    member = HFModel(tiny_llm_path, adapter=str(tmp_path / "gone"), dtype="float32", device="cpu")
    with caplog.at_level("WARNING", logger="spacy_el4ner"):
        save_adapters({"m": member}, tmp_path / "adapters")
    assert "has no adapter_config.json" in caplog.text and not (tmp_path / "adapters").exists()


def test_evaluate_scores_parsed_answers(docs, monkeypatch):
    # a perfect "model": answers each (text, type) prompt with its gold mentions
    gold = {(d.text, label): format_answer([e.text for e in d.ents if e.label_ == label]) for d in docs for label in LABELS}
    prompts_seen = []

    def fake_generate(model, tokenizer, prompts, **kwargs):
        prompts_seen.extend(prompts)
        return [gold[next(k for k in gold if f"Entity type: {k[1]}\nText: {k[0]}" in p)] for p in prompts]

    monkeypatch.setattr(generate_module, "generate_answers", fake_generate)

    class Tok:
        chat_template = None

    scores = generate_module.evaluate(None, Tok(), docs, LABELS, limit=3)
    assert scores["f1"] == 1.0 and scores["n_gold"] == 9
    assert len(prompts_seen) == 3 * len(LABELS)
    wrong = dict(gold)
    wrong[(docs[0].text, "ORG")] = format_answer(["Cupertino"])  # a false positive, a miss
    gold.update(wrong)
    scores = generate_module.evaluate(None, Tok(), docs, LABELS)
    assert scores["precision"] == pytest.approx(10 / 11) and scores["recall"] == pytest.approx(10 / 11)


def test_cli_finetune(tiny_llm_path, docs, tmp_path):
    from typer.testing import CliRunner

    from spacy_el4ner.cli import app

    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    result = CliRunner().invoke(
        app,
        [
            "finetune", "--train", str(tmp_path / "train.spacy"), "--base", tiny_llm_path,
            "--output", str(tmp_path / "cli"), "--epochs", "1", "--lambda", "0.2", "--lr", "0.01",
            "--grad-accum", "2", "--max-train", "2", "--labels", "PER,LOC", "--layer", "2", "--lora-r", "2",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "cli" / META_FILE).read_text())
    assert meta["labels"] == ["PER", "LOC"] and meta["n_train_docs"] == 2 and meta["layer"] == 2
    assert meta["config"]["lam"] == 0.2 and meta["config"]["lora_r"] == 2
    bad = CliRunner().invoke(app, ["finetune", "--output", str(tmp_path / "x"), "--base", tiny_llm_path])
    assert bad.exit_code != 0
    # from a store folder (its labels), with a dev set
    store = DemoStore(spacy.blank("en").vocab, ["LOC", "ORG", "PER"])
    store.add(docs)
    store.to_disk(tmp_path / "store")
    result = CliRunner().invoke(
        app,
        [
            "finetune", "--store", str(tmp_path / "store"), "--dev", str(tmp_path / "train.spacy"), "--dev-limit", "1",
            "--base", tiny_llm_path, "--output", str(tmp_path / "cli2"), "--epochs", "1", "--lambda", "0",
            "--no-checkpoints", "--lr", "0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "cli2" / META_FILE).read_text())
    assert meta["labels"] == ["LOC", "ORG", "PER"] and meta["method"] == "LoRA" and len(meta["dev"]) == 1
    assert "dev P" in result.output
    # training docs from a file, labels from the store the member will serve (a slice may lack some)
    DocBin(docs=docs[1:2]).to_disk(tmp_path / "one.spacy")
    result = CliRunner().invoke(
        app,
        [
            "finetune", "--train", str(tmp_path / "one.spacy"), "--labels-from", str(tmp_path / "store"),
            "--base", tiny_llm_path, "--output", str(tmp_path / "cli3"), "--epochs", "1", "--lambda", "0",
            "--no-checkpoints", "--lr", "0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "cli3" / META_FILE).read_text())
    assert meta["labels"] == ["LOC", "ORG", "PER"] and meta["n_train_docs"] == 1
    assert {e.label_ for e in docs[1].ents} == {"LOC", "PER"}  # the file alone would not give ORG
    for extra, why in (
        (["--labels", "PER"], "at most one of --labels and --labels-from"),
        ([], "not a store folder"),
    ):
        where = tmp_path / "store" if extra else tmp_path
        bad = CliRunner().invoke(
            app, ["finetune", "--train", str(tmp_path / "one.spacy"), "--labels-from", str(where), "--base", tiny_llm_path,
                  "--output", str(tmp_path / "cli4"), *extra],
        )
        assert bad.exit_code != 0 and why in " ".join(bad.output.split()), bad.output


def test_to_doc_spans_resolves_overlaps():
    doc = spacy.blank("en")("Barack Obama visited New York City.")
    spans = generate_module.to_doc_spans(doc, [(0, 6, "PER"), (0, 12, "PER"), (21, 29, "LOC"), (22, 34, "ORG")])
    # the longest of overlapping spans wins; "ew York City" snaps out to whole tokens
    assert [(s.text, s.label_) for s in spans] == [("Barack Obama", "PER"), ("New York City", "ORG")]


def test_fastest_dtype_trains_in_float32_on_a_cpu_without_native_bf16(tiny_llm_path, tmp_path, monkeypatch):
    import spacy_el4ner.models.hf_dtype as hf
    from spacy_el4ner.finetune.train import FinetuneConfig, load_base

    monkeypatch.setattr(hf, "cpu_has_fast_bf16", lambda: False)
    _, model, _ = load_base(FinetuneConfig(base=tiny_llm_path, output_dir=str(tmp_path / "a"), dtype="fastest", device="cpu"))
    assert next(model.parameters()).dtype == torch.float32
    monkeypatch.setattr(hf, "cpu_has_fast_bf16", lambda: True)
    _, model, _ = load_base(FinetuneConfig(base=tiny_llm_path, output_dir=str(tmp_path / "a"), dtype="fastest", device="cpu"))
    assert next(model.parameters()).dtype == torch.bfloat16
    FinetuneConfig(base=tiny_llm_path, output_dir=str(tmp_path / "a"), dtype="fastest").validate()
    with pytest.raises(ValueError, match="dtype must be"):
        FinetuneConfig(base=tiny_llm_path, output_dir=str(tmp_path / "a"), dtype="fp8").validate()
