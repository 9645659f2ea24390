"""Time the README example (median over 3 x 2 sentences).

python benchmarks/time_example.py                      # the default ensemble
python benchmarks/time_example.py qwen2.5-coder-1.5b-instruct,qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct
"""
import statistics
import sys
import time

import spacy
from spacy.training import Example

from spacy_el4ner.readers import read_docs

config = {"labels": ["person", "location", "corporation"]}
if len(sys.argv) > 1:
    config["ensemble"] = {"models": sys.argv[1].split(",")}
nlp = spacy.blank("en")
nlp.add_pipe("el4ner", config=config)
docs = read_docs("corpus/quickstart.jsonl", nlp)
nlp.initialize(get_examples=lambda: [Example(nlp.make_doc(d.text), d) for d in docs])
t = time.perf_counter()
nlp("Warm up.")
print("members", nlp.get_pipe("el4ner").members.keys())
print("load+first", round(time.perf_counter() - t, 1))
texts = ["Tim Cook visited Berlin to meet Siemens executives.", "Elon Musk said Tesla will open a factory near Austin."]
ts = []
for _ in range(3):
    for x in texts:
        t = time.perf_counter()
        d = nlp(x)
        ts.append(time.perf_counter() - t)
        print([(e.text, e.label_) for e in d.ents])
print("per sentence median", round(statistics.median(ts), 2), "min", round(min(ts), 2), "max", round(max(ts), 2))
p = nlp.get_pipe("el4ner")
print({k: round(v / len(ts), 2) for k, v in p.timings.items()})
