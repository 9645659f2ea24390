"""Does a LoRA adapter change a member on llama.cpp as it changes it on transformers?

For each embedded model: a LoRA on every attention and MLP projection with random (not zero)
updates (peft ``init_lora_weights=False``, ``lora_B`` scaled so that the adapter moves the scores
by a few nats: ``SCALES``, or ``--scale``; seed 0), saved as
``finetune`` saves adapters. Both engines score the same 15 continuations (3 prompts x 5) with and
without it: transformers on the converted float32 weights with the adapter merged, llama.cpp on
the shipped GGUF with the adapter converted by ``models/lora_gguf.py``. Reported: how far the
adapter moves the scores on transformers, the correlation of those changes between the engines,
and the mean absolute difference between the engines with the adapter and without it (the latter
is the quantised base's own difference). With ``--no-permute``, the same for a conversion that
leaves out the row reordering of Llama's query/key updates, to show what a wrong conversion looks like.

    python benchmarks/lora_llamacpp.py [--models NAME ...] [--scale S] [--no-permute]

Writes results/defaults/lora-llamacpp-faithfulness.json.
"""
import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROMPTS = [
    [{"role": "user", "content": f"List the cities in: {t}"}]
    for t in ("Tim Cook flew from Berlin to Paris.", "The Nile flows through Cairo.", "Nothing here.")
]
CONTS = [["Berlin", "Paris", "Tim Cook", "Cairo", "[]"]] * len(PROMPTS)
# lora_B scale per model: a change of a few nats (larger scales wreck the larger models' answers)
SCALES = {"smollm2-135m-instruct": 1.0, "qwen2.5-coder-0.5b-instruct": 0.3, "gemma-3-270m": 0.3}


def random_adapter(name: str, scale: float, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from spacy_el4ner.models import zoo
    from spacy_el4ner.models.lora_gguf import MODULES

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(zoo.ensure(name), torch_dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=list(MODULES), init_lora_weights=False))
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "lora_B" in key:
                p.mul_(scale)
    model.save_pretrained(out)
    return out


def measure(name: str, adapter: Path, base_scores: dict) -> dict:
    from spacy_el4ner.models.hf import HFModel
    from spacy_el4ner.models.llamacpp import LlamaCppModel

    hf = np.array(HFModel(name, dtype="float32", adapter=str(adapter)).score(PROMPTS, CONTS))
    ll = np.array(LlamaCppModel(name, adapter=str(adapter), parallel=2).score(PROMPTS, CONTS))
    moved_hf, moved_ll = hf - base_scores["hf"], ll - base_scores["llama"]
    return {
        "mean_abs_change_transformers": round(float(np.abs(moved_hf).mean()), 3),
        "correlation_of_changes": round(float(np.corrcoef(moved_hf.ravel(), moved_ll.ravel())[0, 1]), 4),
        "mean_abs_engine_difference_with_adapter": round(float(np.abs(hf - ll).mean()), 3),
        "mean_abs_engine_difference_without": round(float(np.abs(base_scores["hf"] - base_scores["llama"]).mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m"])
    parser.add_argument("--scale", type=float, default=None, help="lora_B scale for every model (default: SCALES)")
    parser.add_argument("--no-permute", action="store_true", help="Also measure a conversion without Llama's row reordering")
    args = parser.parse_args()
    import spacy_el4ner.models.llamacpp as llamacpp
    import spacy_el4ner.models.lora_gguf as lora_gguf
    from spacy_el4ner.models import zoo
    from spacy_el4ner.models.hf import HFModel
    from spacy_el4ner.models.llamacpp import LlamaCppModel

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            base = {
                "hf": np.array(HFModel(name, dtype="float32").score(PROMPTS, CONTS)),
                "llama": np.array(LlamaCppModel(name, parallel=2).score(PROMPTS, CONTS)),
            }
            scale = args.scale if args.scale is not None else SCALES.get(name, 0.3)
            adapter = random_adapter(name, scale, Path(tmp) / name)
            results[name] = {"arch_reordered": None, "scale": scale, **measure(name, adapter, base)}
            arch = lora_gguf._base_info(zoo.gguf_path(name))[0]
            results[name]["arch_reordered"] = arch in lora_gguf.PERMUTED
            if args.no_permute and arch in lora_gguf.PERMUTED:
                kept, lora_gguf.PERMUTED = lora_gguf.PERMUTED, set()
                wrong_cache = Path(tmp) / "wrong"
                real = lora_gguf.lora_gguf
                lora_gguf.lora_gguf = lambda a, b, _: real(a, b, wrong_cache)  # type: ignore[assignment]
                llamacpp._ENGINES.clear()
                try:
                    results[name]["without_row_reordering"] = measure(name, adapter, base)
                finally:
                    lora_gguf.PERMUTED = kept
                    lora_gguf.lora_gguf = real  # type: ignore[assignment]
                    llamacpp._ENGINES.clear()
                    shutil.rmtree(wrong_cache, ignore_errors=True)
            print(name, json.dumps(results[name]), flush=True)
    out = HERE / "results" / "defaults" / "lora-llamacpp-faithfulness.json"
    doc = {"command": "python benchmarks/lora_llamacpp.py --no-permute", "prompts": len(PROMPTS), "continuations": sum(map(len, CONTS)), "models": results}
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
