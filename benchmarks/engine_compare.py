"""Engines side by side: the same pipeline, data and store through `evaluate` once per engine,
each in its own process (fresh response cache), alternating, repeated; medians.

An engine written ENGINE@COMMIT runs that engine with the package as it was at COMMIT (a
temporary git worktree), e.g. `--engines transformers@HEAD~1,transformers` measures a change.

Reports per engine: seconds per sentence, F1, forward passes and prompt tokens per sentence, and
the process's peak RSS; and how many sentences got the same entities as the first engine.

Usage: python benchmarks/engine_compare.py DATA --store DIR [--engines transformers,llama.cpp,transformers@COMMIT]
       [--members a,b] [--limit 100] [--repeats 1] [--dtype fastest] [--set KEY=VALUE ...] [--output benchmarks/results/speed/engines-NAME.json]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def run_once(spec: str, args: argparse.Namespace, work: Path, trees: dict) -> dict:
    engine, _, commit = spec.partition("@")
    out = work / f"{engine}-{time.time_ns()}"
    cmd = [
        sys.executable, "-m", "spacy_el4ner", "evaluate", str(args.data.resolve()), "--store", str(args.store.resolve()),
        "--output", str(out), "--variants", "none", "--cache", str(out / "cache"), "--engine", engine,
        "--members", args.members, "--limit", str(args.limit), "--save-predictions",
    ] + (["--dtype", args.dtype] if engine == "transformers" else []) + [a for kv in args.set for a in ("--set", kv)]
    cwd = None
    if commit:  # the package from a worktree at COMMIT: first on sys.path (before the installed one)
        if commit not in trees:
            trees[commit] = work / f"tree-{len(trees)}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[commit]), commit], check=True, capture_output=True)
        cwd = trees[commit]
    env = {**os.environ, "PYTHONPATH": str(cwd)} if cwd else None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{spec}: evaluate failed:\n{err[-3000:]}")
    res = json.loads((out / "results.json").read_text())["results"]["ensemble"]
    preds = [json.loads(line)["predicted"] for line in (out / "predictions-ensemble.jsonl").open()]
    return {
        "sec_per_sentence": res["sec_per_sentence"], "f": res["f"], "p": res["p"], "r": res["r"],
        "passes_per_sentence": res["llm_calls_per_sentence"], "prompt_tokens_per_sentence": res["prompt_tokens_per_sentence"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024), "predicted": preds,
    }


def _llama_build() -> str:
    try:
        import llama_cpp
    except ImportError:
        return "not installed"
    features = llama_cpp.llama_print_system_info().decode()
    return f"{llama_cpp.__version__}: " + " ".join(f.split("=")[0].strip() for f in features.split("|") if "= 1" in f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--engines", default="transformers,llama.cpp")
    ap.add_argument("--members", default="qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dtype", default="fastest", help="the transformers engine's weights (fastest, float32, bfloat16, int8)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for evaluate (repeatable)")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    engines = args.engines.split(",")
    runs = {e: [] for e in engines}
    trees: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for _ in range(args.repeats):
                for engine in engines:
                    runs[engine].append(run_once(engine, args, Path(tmp), trees))
                    print(engine, {k: v for k, v in runs[engine][-1].items() if k != "predicted"}, flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    ref = runs[engines[0]][0]["predicted"]
    summary = {}
    for engine, rs in runs.items():
        summary[engine] = {
            key: statistics.median(r[key] for r in rs)
            for key in ("sec_per_sentence", "f", "p", "r", "passes_per_sentence", "prompt_tokens_per_sentence", "peak_rss_mb")
        }
        summary[engine]["same_entities_as_first"] = sum(a == b for a, b in zip(rs[0]["predicted"], ref))
    first = summary[engines[0]]["sec_per_sentence"]
    for engine in engines:
        summary[engine]["speedup_vs_first"] = round(first / summary[engine]["sec_per_sentence"], 2)
    result = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "members": args.members, "n": args.limit, "settings": args.set,
        "commits": {c: subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", c], capture_output=True, text=True).stdout.strip() for c in trees},
        "transformers_dtype": args.dtype,
        "repeats": args.repeats, "machine": platform.machine(), "cpus": os.cpu_count(),
        "cpu_flags": sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}) if Path("/proc/cpuinfo").exists() else [],
        "llama_cpp": _llama_build(),
        "summary": summary,
    }
    print(json.dumps(result, indent=1))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
