"""Naive vs fast mode of the ensemble (and spacy-llm, when its venv exists), in one run, each in
its own process (for a clean peak RSS), on the same sentences.

    python benchmarks/speed_modes.py run --n 100 --out benchmarks/results/speed/modes.json
"""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import spacy
import typer
from spacy.scorer import Scorer
from spacy.training import Example
from wasabi import msg

import spacy_el4ner.component as component
from spacy_el4ner.cli.evaluate import build_pipeline, retriever_block
from spacy_el4ner.cli.run_config import parse_settings
from spacy_el4ner.readers import read_docs
from spacy_el4ner.registry import DEFAULT_MEMBERS
from spacy_el4ner.similarity import HFEncoder
from spacy_el4ner.store import DemoStore

ROOT = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, no_args_is_help=True)
WNUT = ROOT.parent / "shared" / "data" / "wnut17"
SPACY_LLM_PY = ROOT / "benchmarks" / ".venv-spacy-llm" / "bin" / "python"
SPACY_LLM_RUNNER = ROOT / "benchmarks" / "spacy_llm_runner.py"
MODES: Dict[str, Dict[str, Any]] = {
    # one generate per prompt, one full forward pass per scored continuation, every member asked
    "naive": {"batch_size": 1, "share_prefix": False, "lazy_classify": False, "shrink_batches": False},
    # batched generation that drops finished rows; packed scoring on a CPU (score_batching="auto")
    "fast": {"batch_size": 8, "share_prefix": True, "lazy_classify": True, "shrink_batches": True},
}


@app.command("run")
def benchmark(
    n: int = typer.Option(100, "--n", help="Test sentences"),
    test: Path = typer.Option(WNUT / "test.conll", "--test"),
    train: Path = typer.Option(WNUT / "train.conll", "--train"),
    n_train: int = typer.Option(500, "--n-train", help="Store size (first N training sentences)"),
    members: str = typer.Option(",".join(DEFAULT_MEMBERS), "--members"),
    modes: str = typer.Option("naive,fast,spacy-llm-v2", "--modes", help="naive, fast, spacy-llm-v2, spacy-llm-v3"),
    out: Path = typer.Option(ROOT / "benchmarks" / "results" / "benchmark.json", "--out"),
    settings: List[str] = typer.Option([], "--set", help="Component setting KEY=JSON for both modes"),
) -> None:
    """Sentences/s, forward passes, tokens, peak RSS and F1 per mode; ratios against naive."""
    out.parent.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {}
    for mode in modes.split(","):
        part = out.with_name(out.stem + f".{mode}.json")
        if mode.startswith("spacy-llm"):
            if not SPACY_LLM_PY.exists():
                msg.warn(f"{mode}: no {SPACY_LLM_PY}; see benchmarks/README.md to create it")
                continue
            cmd = [str(SPACY_LLM_PY), str(SPACY_LLM_RUNNER), "--task", mode.rsplit("-", 1)[1],
                   "--model-path", str(Path.home() / ".cache" / "spacy_el4ner" / members.split(",")[0]),
                   "--train", str(train), "--test", str(test), "--n-test", str(n), "--n-examples", "5",
                   "--labels", "person,location,group,corporation,product,creative-work", "--out", str(part)]
        else:
            cmd = [sys.executable, __file__, "worker", "--mode", mode, "--n", str(n),
                   "--test", str(test), "--train", str(train), "--n-train", str(n_train),
                   "--members", members, "--out", str(part)] + [a for s in settings for a in ("--set", s)]
        msg.info(f"{mode}: {' '.join(cmd)}")
        subprocess.run(cmd, check=True)
        results[mode] = r = _normalise(json.loads(part.read_text()))
        msg.good(f"{mode}: {r.get('sentences_per_s')} sent/s, F1 {r.get('f')}, peak RSS {r.get('peak_rss_mb')} MB")
    base = results.get("naive")
    for mode, r in results.items():
        if base and r.get("sentences_per_s"):
            r["throughput_vs_naive"] = round(r["sentences_per_s"] / base["sentences_per_s"], 2)
    meta = {"n": n, "test": str(test), "members": members, "date": time.strftime("%Y-%m-%d"),
            "machine": _machine()}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    msg.table([(m, r.get("sentences_per_s"), r.get("throughput_vs_naive"), r.get("f"), r.get("forward_passes_per_sentence"),
                r.get("prompt_tokens_per_sentence"), r.get("generated_tokens_per_sentence"), r.get("peak_rss_mb"))
               for m, r in results.items()],
              header=("mode", "sent/s", "x naive", "F1", "fwd/sent", "prompt tok/sent", "gen tok/sent", "peak RSS MB"))
    msg.good(f"Wrote {out}")


def _normalise(r: Dict[str, Any]) -> Dict[str, Any]:
    """Map the spacy-llm runner's keys onto ours."""
    if "F1" in r and "f" not in r:
        r.update(p=r.get("P"), r=r.get("R"), f=r.get("F1"))
        sec = r.get("seconds_per_sentence")
        r["sec_per_sentence"] = sec
        r["sentences_per_s"] = round(1 / sec, 4) if sec else None
        r["forward_passes_per_sentence"] = r.get("forward_calls_per_sentence")
    return r


def _machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads default"


@app.command("worker")
def bench_worker(
    mode: str = typer.Option(...), n: int = typer.Option(...), test: Path = typer.Option(...),
    train: Path = typer.Option(...), n_train: int = typer.Option(...), members: str = typer.Option(...),
    out: Path = typer.Option(...), settings: List[str] = typer.Option([], "--set"),
) -> None:
    """(internal) One benchmark mode in this process."""

    nlp0 = spacy.blank("en")
    refs = read_docs(test, nlp0)[:n]
    store_dir = out.with_suffix(".store")
    if not (store_dir / "meta.json").exists():
        store = DemoStore(nlp0.vocab, [], HFEncoder())
        store.add(read_docs(train, nlp0)[:n_train])
        store.labels = sorted(store.label_counts())
        store.span_index()
        store.to_disk(store_dir)
    labels = DemoStore(nlp0.vocab).from_disk(store_dir).labels
    opts = MODES[mode]
    overrides = parse_settings(settings)
    if not opts["lazy_classify"]:  # ask every member about every span
        plain = component.classify
        component.classify = lambda *a, **kw: plain(*a, lazy=False, **kw)  # type: ignore[assignment]
    nlp = build_pipeline(labels, members.split(","), store_dir, None, True, retriever_block("sentence", 4, 1, "llm", "first", "["),
                         overrides=overrides)
    pipe = nlp.get_pipe("el4ner")
    for m in pipe.members.values():
        m.batch_size = opts["batch_size"]  # type: ignore[attr-defined]
        m.share_prefix = opts["share_prefix"]  # type: ignore[attr-defined]
        m.shrink_batches = opts["shrink_batches"]  # type: ignore[attr-defined]
    nlp("Warm up: Tim Cook visited Berlin.")  # loads the models outside the timing
    for m in pipe.members.values():
        m._stats = {k: 0 for k in m._stats}  # type: ignore[attr-defined]
    pipe.timings.clear()
    docs_in = [spacy.tokens.Doc(nlp.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r]) for r in refs]
    t0 = time.perf_counter()
    preds = list(nlp.pipe(docs_in, batch_size=16))
    elapsed = time.perf_counter() - t0
    scores = Scorer.score_spans([Example(p, r) for p, r in zip(preds, refs)], "ents")
    stats = pipe.model_stats()
    res = {
        "mode": mode, "n": len(refs), "seconds": round(elapsed, 1),
        "sentences_per_s": round(len(refs) / elapsed, 4), "sec_per_sentence": round(elapsed / len(refs), 2),
        "p": round(100 * (scores["ents_p"] or 0), 1), "r": round(100 * (scores["ents_r"] or 0), 1),
        "f": round(100 * (scores["ents_f"] or 0), 1),
        "forward_passes_per_sentence": round(sum(s["forward_passes"] for s in stats.values()) / len(refs), 1),
        "prompt_tokens_per_sentence": round(sum(s["prompt_tokens"] for s in stats.values()) / len(refs), 1),
        "generated_tokens_per_sentence": round(sum(s["generated_tokens"] for s in stats.values()) / len(refs), 1),
        "stage_seconds_per_sentence": {k: round(v / len(refs), 2) for k, v in pipe.timings.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "members": members.split(","), "settings": overrides, "mode_settings": opts,
    }
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    app()
