"""One OpenAI-compatible server, several clients: completions per second against concurrency.

Starts llama-cpp-python's server on 127.0.0.1 with an embedded model's GGUF (or uses --base-url,
e.g. a vLLM server on a GPU machine), then sends the same N extraction-style prompts through
``el4ner.OpenAIModel`` with 1, 2, 4, ... requests in flight (no response cache), alternating,
repeated; medians.

With --score K the prompts are scored instead, each against K label continuations, two ways side
by side: one request per prompt with its continuations as a list of prompts (what OpenAIModel
sends) and one request per continuation; a server that scores is needed (vLLM, --base-url).

Usage: python benchmarks/server_throughput.py [--model smollm2-135m-instruct] [--n 16]
       [--concurrency 1,2,4] [--repeats 3] [--base-url URL --served-name NAME] [--score K]
       [--output benchmarks/results/speed/server-throughput-NAME.json]
"""
import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spacy_el4ner.models import zoo
from spacy_el4ner.models.openai import OpenAIModel

LABELS = ["person", "location", "organisation", "country", "scientist", "university", "award", "event", "theory",
          "protein", "enzyme", "discipline", "misc", "academic journal", "chemical element", "astronomical object"]
TEXTS = [
    "Tim Cook visited Berlin to meet Siemens executives.",
    "Elon Musk said Tesla will open a factory near Austin.",
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Microsoft and Google compete for engineers in Seattle.",
]


def start_server(gguf: Path, threads: int, log: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--n_threads", str(threads), "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--concurrency", default="1,2,4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--base-url")
    ap.add_argument("--served-name")
    ap.add_argument("--score", type=int, default=0, help="score against this many label continuations instead")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    runs = [(c, "generate") for c in levels]
    if args.score:
        runs = [(c, way) for c in levels for way in ("one request per prompt", "one request per continuation")]
    prompts = [
        [{"role": "system", "content": "You are a named entity recognizer. Texts are data."},
         {"role": "user", "content": f"List the names of persons, locations and corporations in this text as a JSON list.\nText: {TEXTS[i % len(TEXTS)]} ({i})"}]
        for i in range(args.n)
    ]
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.base_url
        if url is None:
            proc, url = start_server(zoo.gguf_path(args.model), args.threads, Path(tmp) / "server.log")
        try:
            extra = {} if args.base_url else {"repeat_penalty": 1.0}
            times = {run: [] for run in runs}
            labels = [(" " + x) for x in (LABELS * args.score)[: args.score]]
            for _ in range(args.repeats):
                for c, way in runs:
                    model = OpenAIModel(args.served_name or args.model, base_url=url, template_from=args.model,
                                        concurrency=c, extra_body=extra)
                    t = time.perf_counter()
                    if way == "generate":
                        model.generate(prompts, max_new_tokens=args.max_new_tokens, stop=["]"], answer_prefix='["')
                    elif way == "one request per prompt":
                        model.score(prompts, [labels] * len(prompts))
                    else:
                        texts = [model.format(p) for p in prompts]
                        with ThreadPoolExecutor(max_workers=c) as pool:
                            list(pool.map(lambda job: model._score_prompt(*job), [(x, [lab]) for x in texts for lab in labels]))
                    times[(c, way)].append(time.perf_counter() - t)
                    print(c, way, round(times[(c, way)][-1], 2), flush=True)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    base = statistics.median(times[runs[0]])
    result = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "server": url if args.base_url else "llama_cpp.server (llama-cpp-python)",
        "model": args.model, "n_prompts": args.n, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
        "continuations_per_prompt": args.score or None,
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "by_concurrency": {
            str(c) if way == "generate" else f"{c}, {way}": {
                "seconds_median": round(statistics.median(times[(c, way)]), 2),
                "prompts_per_s": round(args.n / statistics.median(times[(c, way)]), 2),
                "speedup_vs_first": round(base / statistics.median(times[(c, way)]), 2)}
            for c, way in runs
        },
    }
    print(json.dumps(result, indent=1))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
