#!/usr/bin/env python
"""Baseline: spacy-llm's NER tasks (spacy.NER.v2 / spacy.NER.v3) on a local Hugging Face model.

Runs in its own venv (benchmarks/.venv-spacy-llm, see benchmarks/requirements-spacy-llm.txt),
not in the project's venv: spacy-llm is not a dependency of spacy_el4ner.

    benchmarks/.venv-spacy-llm/bin/python benchmarks/spacy_llm_runner.py \
        --task v3 --model-path ~/.cache/spacy_el4ner/qwen2.5-coder-0.5b-instruct \
        --train /work/shared/data/wnut17/train.conll --test /work/shared/data/wnut17/test.conll \
        --n-test 3 --n-examples 5 \
        --labels person,location,group,corporation,product,creative-work --out results.json

spacy-llm has no built-in Qwen model, so this file registers ``el4ner_bench.Qwen.v1`` in
spacy-llm's ``llm_models`` registry: a callable that takes, per doc, an iterable of prompts
(one per shard) and returns one response string per prompt. Each prompt is sent as the single
user message through the tokenizer's chat template (Qwen's template then adds its default system
message), decoded greedily, one prompt at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import spacy
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy_llm.registry import registry

TASKS = {"v2": "spacy.NER.v2", "v3": "spacy.NER.v3"}
DEFAULT_MAX_NEW_TOKENS = {"v2": 128, "v3": 256}

# The model instances built by the registry function, so the runner can read their counters.
_INSTANCES: List["QwenChat"] = []


class QwenChat:
    """spacy-llm model contract: ``__call__(prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]``
    (outer level: docs; inner level: the prompts of one doc's shards), plus ``context_length``
    so the NER task can shard over-long docs."""

    def __init__(
        self,
        path: str,
        max_new_tokens: int = 256,
        torch_dtype: str = "bfloat16",
        system_prompt: Optional[str] = None,
        num_threads: int = 0,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if num_threads > 0:
            torch.set_num_threads(num_threads)
        path = os.path.expanduser(path)
        self.path = path
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{path}: tokenizer has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(
            path, torch_dtype=getattr(torch, torch_dtype), local_files_only=True
        )
        self.model.to("cpu")
        self.model.eval()
        self.stats = {"prompts": 0, "prompt_tokens": 0, "generated_tokens": 0, "forward_calls": 0}
        # Exact count of model forward passes (prefill + one per decoding step).
        self.model.register_forward_pre_hook(self._count_forward)
        self._context_length = int(getattr(self.model.config, "max_position_embeddings", 32768))
        _INSTANCES.append(self)

    def _count_forward(self, module: Any, args: Any) -> None:
        self.stats["forward_calls"] += 1

    @property
    def context_length(self) -> int:
        return self._context_length

    def _generate(self, prompt: str) -> str:
        import torch

        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The chat template already holds the special tokens.
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        new = out[0, ids.shape[1]:]
        self.stats["prompts"] += 1
        self.stats["prompt_tokens"] += int(ids.shape[1])
        self.stats["generated_tokens"] += int(new.shape[0])  # includes the closing <|im_end|>
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        return [[self._generate(p) for p in prompts_for_doc] for prompts_for_doc in prompts]


@registry.llm_models("el4ner_bench.Qwen.v1")
def qwen_chat(
    path: str,
    max_new_tokens: int = 256,
    torch_dtype: str = "bfloat16",
    system_prompt: Optional[str] = None,
    num_threads: int = 0,
) -> QwenChat:
    """A local Qwen2.5 (or any chat-templated causal LM) folder, greedy, on CPU."""
    return QwenChat(path, max_new_tokens, torch_dtype, system_prompt, num_threads)


# -- data ------------------------------------------------------------------------------------------
def read_bio(path: str) -> List[Tuple[List[str], List[str]]]:
    """token<TAB>tag lines; a blank or whitespace-only line ends a sentence."""
    sents: List[Tuple[List[str], List[str]]] = []
    words: List[str] = []
    tags: List[str] = []
    with open(path, encoding="utf8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sents.append((words, tags))
                words, tags = [], []
                continue
            if "\t" in line:
                tok, tag = line.split("\t")[0], line.split("\t")[-1]
            else:
                tok, tag = line.rsplit(None, 1)
            words.append(tok.strip() or "_")
            tags.append(tag.strip())
    if words:
        sents.append((words, tags))
    return sents


def fix_iob(tags: List[str]) -> List[str]:
    """An I- tag that does not continue an entity of the same label becomes B-."""
    fixed: List[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        fixed.append(tag)
        prev = tag
    return fixed


def make_doc(vocab: Any, words: List[str], tags: Optional[List[str]] = None) -> Doc:
    if tags is None:
        return Doc(vocab, words=words)
    return Doc(vocab, words=words, ents=fix_iob(tags))


def write_examples(docs: List[Doc], task: str, path: Path) -> None:
    """Few-shot file for spacy.FewShotReader.v1 (a JSON list of dicts):
    v2 (NERExample): {"text", "entities": {label: [span texts]}};
    v3 (NERCoTExample): {"text", "spans": [{"text", "is_entity", "label", "reason"}]}, with the
    same "is a LABEL" reason that spacy-llm's own NERCoTExample.generate writes."""
    rows = []
    for doc in docs:
        if task == "v2":
            entities: Dict[str, List[str]] = {}
            for ent in doc.ents:
                entities.setdefault(ent.label_, []).append(ent.text)
            rows.append({"text": doc.text, "entities": entities})
        else:
            spans = [
                {"text": ent.text, "is_entity": True, "label": ent.label_, "reason": f"is a {ent.label_}"}
                for ent in doc.ents
            ]
            rows.append({"text": doc.text, "spans": spans})
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf8")


# -- main ------------------------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=sorted(TASKS), required=True)
    ap.add_argument("--model-path", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--n-test", type=int, default=0, help="first N test sentences (0 = all)")
    ap.add_argument("--n-examples", type=int, default=5, help="few-shot examples (0 = zero-shot)")
    ap.add_argument("--labels", required=True, help="comma-separated, as in the data (e.g. person,location)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: 128 for v2, 256 for v3")
    ap.add_argument("--system-prompt", default=None, help="default: the chat template's own default")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--no-details", action="store_true", help="leave per-sentence outputs out of the JSON")
    args = ap.parse_args(argv)

    labels = [lab.strip() for lab in args.labels.split(",") if lab.strip()]
    max_new = args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[args.task]
    nlp = spacy.blank("en")

    train = read_bio(args.train)
    shots: List[Doc] = []
    for words, tags in train:
        if len(shots) >= args.n_examples:
            break
        doc = make_doc(nlp.vocab, words, tags)
        if doc.ents:
            shots.append(doc)
    test = read_bio(args.test)
    if args.n_test > 0:
        test = test[: args.n_test]
    golds = [make_doc(nlp.vocab, w, t) for w, t in test]

    task_cfg: Dict[str, Any] = {"@llm_tasks": TASKS[args.task], "labels": labels}
    tmpdir = tempfile.TemporaryDirectory(prefix="spacy_llm_shots_")
    if shots:
        shots_path = Path(tmpdir.name) / "examples.json"
        write_examples(shots, args.task, shots_path)
        task_cfg["examples"] = {"@misc": "spacy.FewShotReader.v1", "path": str(shots_path)}
    model_cfg: Dict[str, Any] = {
        "@llm_models": "el4ner_bench.Qwen.v1",
        "path": args.model_path,
        "max_new_tokens": max_new,
        "num_threads": args.threads,
    }
    if args.system_prompt:
        model_cfg["system_prompt"] = args.system_prompt

    t_load = time.perf_counter()
    nlp.add_pipe("llm", config={"task": task_cfg, "model": model_cfg, "save_io": not args.no_details})
    load_s = time.perf_counter() - t_load
    tmpdir.cleanup()  # the reader has read the examples at construction
    qwen = _INSTANCES[-1]

    examples: List[Example] = []
    details: List[Dict[str, Any]] = []
    first_prompt: Any = None
    t0 = time.perf_counter()
    for gold in golds:
        pred = nlp(Doc(nlp.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold]))
        examples.append(Example(pred, gold))
        if not args.no_details:
            io = (pred.user_data.get("llm_io") or {}).get("llm") or {}
            if not details:
                first_prompt = io.get("prompt")
            details.append(
                {
                    "text": gold.text,
                    "gold": [[e.text, e.label_] for e in gold.ents],
                    "pred": [[e.text, e.label_] for e in pred.ents],
                    "response": io.get("response"),
                }
            )
        print(f"[{len(examples)}/{len(golds)}] {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0

    scores = Scorer.score_spans(examples, "ents")
    n = len(examples)
    pct = lambda x: round(100.0 * float(x or 0.0), 2)  # noqa: E731
    result: Dict[str, Any] = {
        "system": "spacy-llm",
        "task": TASKS[args.task],
        "model": os.path.expanduser(args.model_path),
        "n": n,
        "n_examples": len(shots),
        "labels": labels,
        "max_new_tokens": max_new,
        "P": pct(scores["ents_p"]),
        "R": pct(scores["ents_r"]),
        "F1": pct(scores["ents_f"]),
        "per_type": {
            k: {"P": pct(v["p"]), "R": pct(v["r"]), "F1": pct(v["f"])}
            for k, v in (scores.get("ents_per_type") or {}).items()
        },
        "seconds_per_sentence": round(wall / max(n, 1), 3),
        "wall_seconds": round(wall, 2),
        "load_seconds": round(load_s, 2),
        "prompt_tokens_per_sentence": round(qwen.stats["prompt_tokens"] / max(n, 1), 1),
        "generated_tokens_per_sentence": round(qwen.stats["generated_tokens"] / max(n, 1), 1),
        "forward_calls_per_sentence": round(qwen.stats["forward_calls"] / max(n, 1), 1),
        "totals": dict(qwen.stats),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "versions": _versions(),
    }
    if not args.no_details:
        result["first_prompt"] = first_prompt  # the spacy-llm prompt, before the chat template
        result["sentences"] = details
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf8")
    summary = {k: result[k] for k in ("task", "n", "P", "R", "F1", "seconds_per_sentence")}
    print(json.dumps(summary))
    return 0


def _versions() -> Dict[str, str]:
    from importlib.metadata import version

    out = {}
    for pkg in ("spacy", "spacy-llm", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # pragma: no cover
            out[pkg] = "?"
    return out


if __name__ == "__main__":
    sys.exit(main())
