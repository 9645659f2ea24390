"""``finetune``: CLLMFS LoRA fine-tuning (LM loss + InfoNCE on span representations).

The heavy imports (torch, transformers, peft) happen inside the command.
"""
import json
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

DEFAULT_BASE = "qwen2.5-coder-0.5b-instruct"


def finetune(
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the adapter, checkpoints and el4ner_finetune.json"),
    store: Optional[Path] = typer.Option(None, "--store", help="Training docs: a demonstration store folder"),
    train_path: Optional[Path] = typer.Option(None, "--train", help="Training docs: .spacy, JSONL or token/BIO file"),
    dev: Optional[Path] = typer.Option(None, "--dev", help="Dev docs (.spacy, JSONL, BIO or store) for F1 per epoch"),
    base: str = typer.Option(DEFAULT_BASE, "--base", help="Base model: embedded name, local folder or hub id"),
    epochs: int = typer.Option(3, "--epochs", help="Epochs"),
    lam: float = typer.Option(0.1, "--lambda", help="Contrastive weight (0: plain LoRA)"),
    temperature: float = typer.Option(0.1, "--temperature", help="InfoNCE temperature"),
    layer: Optional[int] = typer.Option(None, "--layer", help="Hidden layer for the contrastive term (default 0.6 x layers)"),
    lora_r: int = typer.Option(8, "--lora-r", help="LoRA rank"),
    lora_alpha: int = typer.Option(16, "--lora-alpha", help="LoRA alpha"),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", help="LoRA dropout"),
    target_modules: str = typer.Option("q_proj,k_proj,v_proj,o_proj", "--target-modules", help="Comma-separated LoRA targets"),
    lr: float = typer.Option(2e-4, "--lr", help="Learning rate"),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Batches per optimizer step"),
    batch_size: int = typer.Option(4, "--batch-size", help="Records per forward pass (the contrastive term spans the batch)"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    max_train: int = typer.Option(0, "--max-train", help="Use only the first N training docs (0: all)"),
    max_length: int = typer.Option(1024, "--max-length", help="Skip records longer than this many tokens"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels (default: the store's / all in the data)"),
    labels_from: Optional[Path] = typer.Option(None, "--labels-from", help="Take the labels from this store folder (the store the adapted member will serve)"),
    dev_limit: int = typer.Option(50, "--dev-limit", help="Evaluate on at most N dev docs per epoch (0: all)"),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 (fast on GPUs and CPUs with native bf16, very slow on others), float16, or fastest (bfloat16 where native, else float32)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda when available)"),
    no_checkpoints: bool = typer.Option(False, "--no-checkpoints", help="Do not save an adapter after every epoch"),
    eval_before: bool = typer.Option(False, "--eval-before", help="Also evaluate the base model on --dev before training"),
    eval_every: int = typer.Option(1, "--eval-every", help="Evaluate on --dev every N epochs (and after the last)"),
    empty_ratio: float = typer.Option(1.0, "--empty-ratio", help="Empty-answer records kept per record with a mention (-1: all)"),
) -> None:
    """Fine-tune a LoRA adapter for few-shot NER with the CLLMFS objective."""
    from ..finetune.data import load_docs
    from ..finetune.train import META_FILE, FinetuneConfig, train

    if (store is None) == (train_path is None):
        raise typer.BadParameter("give exactly one of --store and --train")
    if labels and labels_from is not None:
        raise typer.BadParameter("give at most one of --labels and --labels-from")
    for option, folder in (("--store", store), ("--labels-from", labels_from)):
        if folder is not None and not (folder / "docs.spacy").exists():
            raise typer.BadParameter(f"{option} {folder} is not a store folder (no docs.spacy): build one with `store build`")
    source = store if store is not None else train_path
    assert source is not None
    docs, store_labels = load_docs(source)
    if max_train:
        docs = docs[:max_train]
    if labels_from is not None:
        store_labels = load_docs(labels_from)[1]
    label_list: List[str] = [x.strip() for x in labels.split(",") if x.strip()] if labels else store_labels
    dev_docs = load_docs(dev)[0] if dev is not None else None
    config = FinetuneConfig(
        base=base,
        output_dir=str(output),
        epochs=epochs,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=[x.strip() for x in target_modules.split(",") if x.strip()],
        layer=layer,
        lam=lam,
        temperature=temperature,
        grad_accum=grad_accum,
        batch_size=batch_size,
        seed=seed,
        max_length=max_length,
        dtype=dtype,
        device=device,
        eval_limit=dev_limit or None,
        checkpoints=not no_checkpoints,
        eval_before=eval_before,
        eval_every=eval_every,
        empty_ratio=None if empty_ratio < 0 else empty_ratio,
    )
    msg.info(f"Fine-tuning {base} on {len(docs)} docs (lambda={lam}, {epochs} epochs) -> {output}")
    out = train(config, docs, dev_docs, labels=label_list or None)
    meta = json.loads((out / META_FILE).read_text(encoding="utf8"))
    for entry in meta["losses"]:
        line = f"epoch {entry['epoch']} ({entry.get('train_seconds', 0):.0f} s): loss {entry['total']:.4f} (lm {entry['lm']:.4f}"
        if entry.get("contrastive") is not None:
            line += f", contrastive {entry['contrastive']:.4f}"
        msg.text(line + ")")
    if meta.get("dev_before"):
        b = meta["dev_before"]
        msg.text(f"before fine-tuning: dev P {b['precision']:.3f} R {b['recall']:.3f} F1 {b['f1']:.3f}")
    for entry in meta["dev"]:
        msg.text(f"epoch {entry['epoch']}: dev P {entry['precision']:.3f} R {entry['recall']:.3f} F1 {entry['f1']:.3f}")
    msg.good(
        f"Adapter saved to {out}; use it with el4ner.HFModel.v1 or el4ner.LlamaCppModel.v1: "
        f"name = \"{base}\", adapter = \"{out}\""
    )
