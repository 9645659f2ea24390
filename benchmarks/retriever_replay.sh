#!/usr/bin/env bash
# Does the new default retriever (whole-text similarity, no model call) give the same predictions as the old one
# (span-level retrieval over the first member's zero-shot answer, SpanSimRetriever.v3 at commit fb00193)?
# Runs the first 100 dev sentences of each dataset with the default pair, first with the old code (a git worktree
# of fb00193) filling a response cache, then with this checkout answered from that cache, and compares.
#   bash benchmarks/retriever_replay.sh [--data DIR] [DATASET ...]   (datasets: wnut17 politics ncbi)
# Writes benchmarks/results/defaults/sentence-retriever-replay.json; run folders go to benchmarks/runs/replay.
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
if [ "${1:-}" = "--data" ]; then D=$2; shift 2; fi
SETS=${*:-wnut17 politics ncbi}
D=$(cd "$D" && pwd)
mkdir -p benchmarks/runs/replay
R=$(cd benchmarks/runs/replay && pwd)
OLD=$R/old-src
[ -d $OLD ] || git worktree add --detach $OLD fb00193
file() { case $1 in wnut17) echo $D/wnut17/dev.conll;; politics) echo $D/crossner/politics/dev.txt;; ncbi) echo $D/ncbi-disease/devel.tsv;; esac; }
train() { case $1 in wnut17) echo "$D/wnut17/train.conll --limit 500";; politics) echo $D/crossner/politics/train.txt;; ncbi) echo "$D/ncbi-disease/train.tsv --limit 500";; esac; }
for ds in $SETS; do
  [ -d $R/stores/$ds ] || python -m spacy_el4ner store build $(train $ds) -o $R/stores/$ds
  (cd $OLD && PYTHONPATH=$OLD python -m spacy_el4ner evaluate $(file $ds) --store $R/stores/$ds --limit 100 --variants none \
     --cache $R/cache --save-predictions --output $R/before/$ds --name $ds-dev100)
  python -m spacy_el4ner evaluate $(file $ds) --store $R/stores/$ds --limit 100 --variants none --cache $R/cache \
    --save-predictions --output $R/after/$ds --name $ds-dev100
done
python - "$R" $SETS <<'PY'
import json, sys
root, sets = sys.argv[1], sys.argv[2:]
out = {"command": "bash benchmarks/retriever_replay.sh " + " ".join(sets), "old": "SpanSimRetriever.v3 (fb00193)",
       "new": "SentenceSimRetriever.v1", "members": ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"], "datasets": {}}
for ds in sets:
    rows = {}
    for side in ("before", "after"):
        rows[side] = [json.loads(l) for l in open(f"{root}/{side}/{ds}/predictions-ensemble.jsonl")]
        rows[side + "_results"] = json.load(open(f"{root}/{side}/{ds}/results.json"))["results"]["ensemble"]
    b, a = rows["before"], rows["after"]
    out["datasets"][ds] = {
        "sentences": len(b), "same_predictions": sum(x["predicted"] == y["predicted"] for x, y in zip(b, a)),
        "f1_old": rows["before_results"]["f"], "f1_new": rows["after_results"]["f"],
        "old_units_with_query_spans_pct": rows["before_results"].get("query_span_units_pct"),
        "new_forward_passes_per_sentence": rows["after_results"]["llm_calls_per_sentence"],
        "new_cache_hits": rows["after_results"]["cache_hits"],
    }
json.dump(out, open("benchmarks/results/defaults/sentence-retriever-replay.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY
