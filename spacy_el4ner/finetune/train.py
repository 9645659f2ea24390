"""CLLMFS training: LoRA fine-tuning of a causal LM on few-shot NER records, with an InfoNCE
term on mid-layer span representations.

Each step: a forward pass (``output_hidden_states=True`` when the contrastive term is on), the
LM loss on the answer tokens, plus ``lam`` times the InfoNCE loss over the spans of the prompt
text, mean-pooled at the configured layer. ``lam=0`` is plain LoRA fine-tuning (the contrastive
term is not computed at all).
"""
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from ..errors import Errors
from ..models.hf import resolve_dtype
from .data import IGNORE_INDEX, DocSource, Record, build_records, labels_of, load_docs
from .loss import info_nce, span_representations

logger = logging.getLogger("spacy_el4ner")

META_FILE = "el4ner_finetune.json"
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class FinetuneConfig:
    """Settings of one CLLMFS fine-tuning run.

    base (str): Base model: an embedded short name (resolved with ``zoo.ensure``), a local
        folder or a hub id.
    output_dir (str): Where the adapter, the checkpoints and ``el4ner_finetune.json`` go.
    epochs (int): Passes over the training records.
    lr (float): AdamW learning rate.
    weight_decay (float): AdamW weight decay.
    lr_schedule (str): "constant" or "linear" (decay to 0 over the run).
    lora_r (int): LoRA rank.
    lora_alpha (int): LoRA alpha.
    lora_dropout (float): LoRA dropout.
    target_modules (List[str]): The modules LoRA adapts.
    layer (Optional[int]): The hidden-state layer for the contrastive term (0: embeddings,
        N: the last layer); default ``int(0.6 * num_layers)``.
    lam (float): Weight of the contrastive term; 0 is plain LoRA fine-tuning.
    temperature (float): InfoNCE temperature.
    grad_accum (int): Batches per optimizer step.
    batch_size (int): Records per forward pass (right-padded). The InfoNCE term runs over all
        spans of the batch: with 1, only texts with two mentions of one type give it an anchor.
    max_grad_norm (float): Gradient clipping (0: off).
    seed (int): Seed for shuffling, non-entity spans and LoRA initialization.
    max_length (int): Records longer than this many tokens are skipped.
    negatives (int): Non-entity spans per Doc for the contrastive term.
    include_empty (bool): Train on (text, type) pairs without a mention too (answer ``<<< >>>``).
    empty_ratio (Optional[float]): At most this many empty-answer records per record with a
        mention (seeded sample; None: all). With all of them, 50 WNUT-17 sentences give ~9 empty
        records per non-empty one and one epoch of plain LoRA learnt to answer empty (dev F1 0).
    dtype (str): "float32" (default), "bfloat16" (2.4x faster on a CPU with native bf16, very slow on
        one without), "float16", or "fastest" (bfloat16 on a CUDA GPU or a CPU with native bf16, else float32).
    device (Optional[str]): "cpu", "cuda", ...; None picks cuda when available.
    eval_limit (Optional[int]): Evaluate on at most this many dev Docs per epoch.
    eval_max_new_tokens (int): Longest generated answer during evaluation.
    eval_constrained (bool): Evaluate with constrained decoding (only separators and text copies).
    checkpoints (bool): Save the adapter after every epoch (output_dir/checkpoint-epochN).
    progress (bool): Show a tqdm progress bar.
    eval_every (int): Evaluate on the dev docs every N epochs (and after the last one).
    eval_before (bool): Also evaluate the base model (LoRA weights still zero) on the dev docs
        before training: the "before fine-tuning" number, with the same prompt and decoding.
    """

    base: str = "qwen2.5-coder-0.5b-instruct"
    output_dir: str = "finetuned"
    epochs: int = 3
    lr: float = 2e-4
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: List[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    layer: Optional[int] = None
    lam: float = 0.1
    temperature: float = 0.1
    grad_accum: int = 1
    batch_size: int = 4
    max_grad_norm: float = 1.0
    seed: int = 0
    max_length: int = 1024
    negatives: int = 3
    include_empty: bool = True
    empty_ratio: Optional[float] = 1.0
    dtype: str = "float32"
    device: Optional[str] = None
    eval_limit: Optional[int] = 50
    eval_max_new_tokens: int = 48
    eval_constrained: bool = False
    checkpoints: bool = True
    progress: bool = True
    eval_before: bool = False
    eval_every: int = 1

    def validate(self) -> None:
        """RAISES (ValueError): On settings out of range."""
        if self.epochs < 1 or self.grad_accum < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError(Errors.E512.format(values=(self.epochs, self.grad_accum, self.batch_size, self.eval_every)))
        if self.lam < 0:
            raise ValueError(Errors.E513.format(value=self.lam))
        if self.temperature <= 0:
            raise ValueError(Errors.E508.format(value=self.temperature))
        if self.dtype not in ("float32", "bfloat16", "float16", "fastest"):
            raise ValueError(Errors.E118.format(options=("float32", "bfloat16", "float16", "fastest"), value=self.dtype))
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(Errors.E514.format(value=self.lr_schedule))
        if not self.target_modules:
            raise ValueError(Errors.E515)


def resolve_base(name: str) -> str:
    """RETURNS (str): A path (embedded names resolved with ``zoo.ensure``) or the hub id."""
    from ..models import zoo

    if name in zoo.ZOO:
        return str(zoo.ensure(name))
    if name in zoo.EXCLUDED:
        from ..models.protocol import ModelLoadError

        raise ModelLoadError(Errors.E121.format(name=name, reason=zoo.EXCLUDED[name], known=", ".join(sorted(zoo.ZOO))))
    return name


def default_layer(num_layers: int) -> int:
    """RETURNS (int): The middle-to-deep layer used by default: ``int(0.6 * num_layers)``, at least 1."""
    return min(num_layers, max(1, int(0.6 * num_layers)))


def load_base(config: FinetuneConfig) -> Tuple[Any, Any, str]:
    """Load the tokenizer and the base model for training.

    RETURNS (Tuple[tokenizer, model, str]): The tokenizer, the model (on its device) and the
        resolved base path.
    """
    import os

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base(config.base)
    kwargs: Dict[str, Any] = {}
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        kwargs["local_files_only"] = True
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(config.dtype, device)
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=getattr(torch, dtype), **kwargs)
    model.to(device)
    model.config.use_cache = False
    return tokenizer, model, path


def collate(records: Sequence[Record], pad_id: int, device: Any) -> Dict[str, Any]:
    """Right-pad a batch of records.

    RETURNS (Dict[str, Any]): input_ids, attention_mask, labels (tensors) and, per row, the span
        ranges, types and keys.
    """
    import torch

    width = max(len(r) for r in records)
    ids = [r.input_ids + [pad_id] * (width - len(r)) for r in records]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in records]
    labels = [r.labels + [IGNORE_INDEX] * (width - len(r)) for r in records]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
        "spans": [r.spans for r in records],
        "span_types": [r.span_types for r in records],
        "span_keys": [r.span_keys for r in records],
    }


def lm_loss(logits: Any, labels: Any) -> Any:
    """RETURNS: Mean next-token cross-entropy over the labelled (answer) positions."""
    import torch.nn.functional as F

    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def contrastive_loss(hidden: Any, batch: Dict[str, Any], temperature: float) -> Any:
    """InfoNCE over the spans of all rows of the batch at one layer.

    hidden: (batch, seq, d) hidden states of the chosen layer.
    RETURNS: The scalar loss (0, attached to the graph, when no span has a positive).
    """
    import torch

    reps = []
    types: List[int] = []
    keys: List[int] = []
    for row, spans in enumerate(batch["spans"]):
        if spans:
            reps.append(span_representations(hidden[row], spans))
            types.extend(batch["span_types"][row])
            keys.extend(batch["span_keys"][row])
    if not reps:
        return hidden.sum() * 0.0
    return info_nce(
        torch.cat(reps),
        torch.tensor(types, device=hidden.device),
        temperature,
        keys=torch.tensor(keys, device=hidden.device),
    )


def step_losses(model: Any, batch: Dict[str, Any], lam: float, layer: int, temperature: float) -> Tuple[Any, Optional[Any]]:
    """One forward pass.

    RETURNS (Tuple): The LM loss and the contrastive loss (None when ``lam`` is 0: then the
        hidden states are not even requested).
    """
    want_hidden = lam > 0
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=want_hidden,
        use_cache=False,
    )
    lm = lm_loss(out.logits, batch["labels"])
    if not want_hidden:
        return lm, None
    return lm, contrastive_loss(out.hidden_states[layer], batch, temperature)


def evaluate_losses(
    model: Any,
    records: Sequence[Record],
    pad_id: int,
    *,
    layer: Optional[int] = None,
    temperature: float = 0.1,
    batch_size: int = 1,
) -> Dict[str, float]:
    """Mean LM loss (and contrastive loss when ``layer`` is given) over records, without
    gradients and in eval mode (no dropout).

    RETURNS (Dict[str, float]): {"lm": ..., "contrastive": ...} (contrastive only with a layer).
    """
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lm_total = cl_total = 0.0
    n = 0
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            batch = collate(records[start : start + batch_size], pad_id, device)
            lm, cl = step_losses(model, batch, 1.0 if layer is not None else 0.0, layer or 0, temperature)
            lm_total += float(lm)
            cl_total += float(cl) if cl is not None else 0.0
            n += 1
    if was_training:
        model.train()
    out = {"lm": lm_total / max(1, n)}
    if layer is not None:
        out["contrastive"] = cl_total / max(1, n)
    return out


def train(
    config: FinetuneConfig,
    train_docs: DocSource,
    dev_docs: Optional[DocSource] = None,
    labels: Optional[Sequence[str]] = None,
    descriptions: Optional[Dict[str, str]] = None,
) -> Path:
    """Fine-tune a LoRA adapter with the CLLMFS objective.

    config (FinetuneConfig): The settings.
    train_docs: Labelled Docs, a DemoStore, a store folder or a data file.
    dev_docs: Optional labelled Docs (same kinds) for a span-level F1 after every epoch.
    labels (Optional[Sequence[str]]): The label set (default: the store's, else all in the data).
    descriptions (Optional[Dict[str, str]]): Optional label descriptions for the prompt.
    RETURNS (Path): The output folder, holding the adapter (``save_pretrained``), one
        checkpoint-epochN folder per epoch and ``el4ner_finetune.json`` (config, labels, losses
        and dev metrics per epoch).
    """
    import torch
    from tqdm import tqdm

    config.validate()
    docs, source_labels = load_docs(train_docs)
    labels = list(labels or source_labels or labels_of(docs))
    if not labels:
        raise ValueError(Errors.E503)
    dev: List[Doc] = load_docs(dev_docs)[0] if dev_docs is not None else []
    out_dir = Path(config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer, base_model, base_path = load_base(config)
    num_layers = int(base_model.config.num_hidden_layers)
    layer = config.layer if config.layer is not None else default_layer(num_layers)
    if not 0 <= layer <= num_layers:
        raise ValueError(Errors.E510.format(num_layers=num_layers, layer=layer))
    if config.lam > 0 and layer == 0:
        logger.warning("layer=0 is the embedding output: LoRA cannot change it, the contrastive term has no effect")

    records = build_records(
        docs,
        tokenizer,
        labels,
        descriptions=descriptions,
        negatives=config.negatives,
        max_length=config.max_length,
        include_empty=config.include_empty,
        empty_ratio=config.empty_ratio,
        seed=config.seed,
    )
    if not records:
        raise ValueError(Errors.E511)

    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base_model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    logger.info(
        "CLLMFS: %d records, %d labels, %d trainable parameters, layer %d/%d, lambda=%g",
        len(records), len(labels), sum(p.numel() for p in trainable), layer, num_layers, config.lam,
    )
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    batches_per_epoch = math.ceil(len(records) / config.batch_size)
    total_steps = config.epochs * math.ceil(batches_per_epoch / config.grad_accum)
    if config.lr_schedule == "linear":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / max(1, total_steps)))
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    rng = random.Random(config.seed)
    history: List[Dict[str, Any]] = []

    def dev_scores() -> Dict[str, float]:
        """Span F1 on the dev docs (eval mode for the pass, then back to training)."""
        from .generate import evaluate

        model.eval()
        scores = evaluate(
            model, tokenizer, dev, labels, descriptions=descriptions, max_new_tokens=config.eval_max_new_tokens,
            constrained=config.eval_constrained, limit=config.eval_limit,
        )
        model.train()
        return scores

    before: Optional[Dict[str, float]] = None
    if dev and config.eval_before:
        t0 = time.time()
        before = dev_scores()
        before["seconds"] = round(time.time() - t0, 2)
        logger.info("Before fine-tuning: %s", json.dumps(before))
    started = time.time()
    model.train()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.time()
        order = list(range(len(records)))
        rng.shuffle(order)
        sums = {"lm": 0.0, "contrastive": 0.0, "total": 0.0}
        n_batches = 0
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not config.progress,
            leave=False,
        )
        optimizer.zero_grad()
        for i, start in enumerate(bar):
            batch = collate([records[j] for j in order[start : start + config.batch_size]], pad_id, device)
            lm, cl = step_losses(model, batch, config.lam, layer, config.temperature)
            loss = lm if cl is None else lm + config.lam * cl
            (loss / config.grad_accum).backward()
            sums["lm"] += lm.item()
            sums["contrastive"] += cl.item() if cl is not None else 0.0
            sums["total"] += loss.item()
            n_batches += 1
            if (i + 1) % config.grad_accum == 0 or i + 1 == batches_per_epoch:
                if config.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            bar.set_postfix(loss=f"{sums['total'] / n_batches:.4f}")
        entry: Dict[str, Any] = {"epoch": epoch, **{k: v / max(1, n_batches) for k, v in sums.items()}}
        entry["train_seconds"] = round(time.time() - epoch_start, 2)
        if config.lam == 0:
            entry["contrastive"] = None
        if dev and (epoch % config.eval_every == 0 or epoch == config.epochs):
            entry["dev"] = dev_scores()
        history.append(entry)
        logger.info("Epoch %d: %s", epoch, json.dumps(entry))
        if config.checkpoints:
            model.save_pretrained(str(out_dir / f"checkpoint-epoch{epoch}"))
    model.save_pretrained(str(out_dir))
    meta = {
        "method": "CLLMFS (LoRA + InfoNCE on span representations)" if config.lam > 0 else "LoRA",
        "config": asdict(config),
        "base_path": base_path,
        "labels": labels,
        "descriptions": dict(descriptions or {}),
        "layer": layer,
        "num_layers": num_layers,
        "n_train_docs": len(docs),
        "n_dev_docs": len(dev),
        "n_records": len(records),
        "losses": [{k: e[k] for k in ("epoch", "lm", "contrastive", "total", "train_seconds")} for e in history],
        "dev_before": before,
        "dev": [{"epoch": e["epoch"], **e["dev"]} for e in history if "dev" in e],
        "seconds": round(time.time() - started, 2),
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf8")
    logger.info("Saved the adapter and %s to %s", META_FILE, out_dir)
    return out_dir
