"""The whole spaCy pipeline with a real model's weights, on a given device: the entities and the time.

Run it on the CPU here and on the lent GPU, then compare the two outputs: the GPU path must give
the CPU's entities (up to bf16 rounding differences in near ties) with real weights, not only with
the random weights of the GPU tests. The member is SmolLM2-135M-Instruct: its GGUF (98 MB) is the
only embedded model small enough to travel to the GPU machine (64 MiB per call, in two parts).
Demonstrations come from ``RandomRetriever.v1`` (seeded by the sentence text, the same on every
machine) and the type prior (which needs the sentence encoder) is off, so no encoder has to travel.

    python benchmarks/gpu_real.py DATA LIMIT OUT.json [--device cuda] [--batch-size 16]
        [--convert PART1 PART2 ...]   # assemble + convert the GGUF first (sha256 checked)

OUT.json: device, load and run seconds, and per sentence the text and (start, end, label) entities.
"""
import argparse
import json
import time
from pathlib import Path

import spacy
from spacy.util import minibatch

from spacy_el4ner.cli.evaluate import build_pipeline, retriever_block
from spacy_el4ner.models import zoo
from spacy_el4ner.readers import read_docs

MEMBER = "smollm2-135m-instruct"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("limit", type=int)
    ap.add_argument("out")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--store", default="stores/wnut17-train500")
    ap.add_argument("--convert", nargs="*", default=[])
    args = ap.parse_args()
    if args.convert:
        spec = zoo.get_spec(MEMBER)
        zoo._convert_gguf(spec, [Path(p) for p in args.convert], zoo.cache_root() / MEMBER)
    refs = read_docs(Path(args.data), spacy.blank("en"))[: args.limit]
    labels = json.loads((Path(args.store) / "meta.json").read_text()).get("labels")
    t0 = time.perf_counter()
    nlp = build_pipeline(
        labels, [MEMBER], Path(args.store), None, "none", retriever_block("random", 4, 1, "llm", "first", "["),
        overrides={"classify.type_prior": None, "ensemble.models": [MEMBER], "ensemble.device": args.device, "ensemble.batch_size": args.batch_size},
    )
    first = nlp("Warm up: Tim Cook visited Berlin.")  # loads the weights
    load_s = time.perf_counter() - t0
    texts = [r.text for r in refs]
    t1 = time.perf_counter()
    rows = []
    for batch in minibatch(texts, size=args.batch_size):
        for doc in nlp.pipe(batch):
            group = doc.spans[nlp.get_pipe("el4ner").spans_key]
            cands = [[s.start_char, s.end_char, s.label_, sc] for s, sc in zip(group, group.attrs.get("scores", []))]
            rows.append({"text": doc.text, "ents": [[e.start_char, e.end_char, e.label_] for e in doc.ents], "candidates": cands})
    run_s = time.perf_counter() - t1
    pipe = nlp.get_pipe("el4ner")
    out = {
        "device": args.device, "member": MEMBER, "sentences": len(rows), "load_s": round(load_s, 2),
        "run_s": round(run_s, 2), "sec_per_sentence": round(run_s / max(1, len(rows)), 4),
        "warm_up_ents": [[e.text, e.label_] for e in first.ents], "stats": pipe.model_stats(), "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
