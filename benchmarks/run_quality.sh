#!/usr/bin/env bash
# Quality runs for benchmarks/RESULTS.md (resumable: responses are cached in .el4ner_cache).
# Usage: bash benchmarks/run_quality.sh [N_WNUT] [N_POLITICS] [N_NCBI]   (0 = the whole test split)
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
NW=${1:-100}; NP=${2:-30}; NN=${3:-60}
E="python -m spacy_el4ner evaluate"
python -m spacy_el4ner store build $D/wnut17/train.conll --limit 500 -o stores/wnut17-train500
python -m spacy_el4ner store build $D/crossner/politics/train.txt -o stores/politics-train
python -m spacy_el4ner store build $D/ncbi-disease/train.tsv --limit 500 -o stores/ncbi-train500
$E $D/wnut17/test.conll --store stores/wnut17-train500 --limit $NW --members-alone --ablate --cache .el4ner_cache --output benchmarks/results/wnut17-test$NW --name "WNUT-17 test, first $NW sentences"
$E $D/crossner/politics/test.txt --store stores/politics-train --limit $NP --members-alone --ablate --cache .el4ner_cache --output benchmarks/results/politics-test$NP --name "CrossNER politics test, first $NP sentences"
$E $D/ncbi-disease/test.tsv --store stores/ncbi-train500 --limit $NN --members-alone --ablate --cache .el4ner_cache --output benchmarks/results/ncbi-test$NN --name "NCBI-disease test, first $NN sentences"
