"""Does a config written by ``evaluate --export-config`` give the evaluated pipeline back?

Loads a pipeline (a folder from ``spacy assemble CONFIG DIR``, or the config itself), runs it over
the first N sentences of labelled data, and compares its entities with an ``evaluate
--save-predictions`` file of the same sentences. With the run's response cache in the config,
equal prompts are answered from the cache, so the cache hits show that the prompts (retrieval,
demonstrations, templates) are the same too.

    python benchmarks/export_check.py PIPELINE_OR_CONFIG DATA PREDICTIONS.jsonl [--limit N]
"""
import argparse
import json
import time
from pathlib import Path
from typing import List

import spacy
from spacy.tokens import Doc
from spacy.util import minibatch

from spacy_el4ner.readers import read_docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=Path, help="Pipeline folder (spacy assemble) or config.cfg")
    parser.add_argument("data", type=Path, help="Labelled data the predictions were made on")
    parser.add_argument("predictions", type=Path, help="predictions-*.jsonl of evaluate --save-predictions")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8, help="Docs per nlp.pipe call, as evaluate --batch-size (8): "
                        "other batches pad prompts differently, and bf16 decoding can then differ in a token")
    args = parser.parse_args()
    if args.pipeline.is_file():
        nlp = spacy.util.load_model_from_config(spacy.util.load_config(args.pipeline), auto_fill=True)
    else:
        nlp = spacy.load(args.pipeline)
    refs = read_docs(args.data, spacy.blank("en"))[: args.limit]
    rows = [json.loads(line) for line in args.predictions.open(encoding="utf8")][: len(refs)]
    if len(rows) < len(refs):
        raise SystemExit(f"{args.predictions} has {len(rows)} rows, fewer than the {len(refs)} sentences to check")
    t0 = time.perf_counter()
    docs: List[Doc] = []
    for batch in minibatch(refs, size=args.batch_size):
        docs.extend(nlp.pipe([Doc(nlp.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r]) for r in batch]))
    elapsed = time.perf_counter() - t0
    same = 0
    for doc, row in zip(docs, rows):
        if doc.text != row["text"]:
            raise SystemExit(f"Sentence texts differ: {doc.text!r} vs {row['text']!r}; give the data the predictions came from")
        mine = sorted((e.start_char, e.end_char, e.label_) for e in doc.ents)
        theirs = sorted((s, e, lab) for s, e, lab, *_ in row["predicted"])
        same += mine == theirs
        if mine != theirs:
            print(f"differs: {doc.text[:80]!r}\n  pipeline    {mine}\n  predictions {theirs}")
    stats = nlp.get_pipe("el4ner").model_stats()
    passes = sum(s.get("forward_passes", 0) for s in stats.values())  # 0: every answer came from the cache
    hits = sum(s.get("cache_hits", 0) for s in stats.values())
    print(json.dumps({
        "sentences": len(docs), "same_entities": same, "members": list(stats),
        "forward_passes": passes, "cache_hits": hits, "seconds": round(elapsed, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
