#!/usr/bin/env bash
# Full test splits for benchmarks/RESULTS.md, cheapest runs first. Resumable twice over: model
# responses are cached in .el4ner_cache, and finished variants are kept in each results.json.
# Usage: bash benchmarks/run_full.sh [STEP...]   steps: wnut wnut-cheap ncbi ncbi-cheap wnut-random
#        ncbi-random smollm politics politics-cheap politics-smollm politics-random wnut-s8 ncbi-s8 politics-s8 wnut-s9 ncbi-s9 politics-s9
#        wnut-cllmfs ncbi-cllmfs (default: all, in that order)
# "cheap" = the first member alone, no voting, no validation, no type prior, no trim: mostly answered from the cache.
# Outputs: results/*-full-s6 (session 6 defaults, with the span-edge rule); session 5's are in results/*-full.
# Steps wnut-s8 ncbi-s8 politics-s8: the ensemble with session 8's defaults (classify.v2, validation with the
# nearest demonstration) in results/*-full-s8; extraction prompts are unchanged, so it comes from the cache.
# Steps wnut-s9 ncbi-s9 politics-s9: session 9's defaults (classification with the 3 nearest demonstrations).
# Steps wnut-cllmfs ncbi-cllmfs (session 10): the default pair + Qwen with a CLLMFS adapter (one bf16 epoch on the
# store's 500 training sentences, trained first if adapters/ lacks it, ~9 min for WNUT-17) as a third member, and
# the adapted member alone, in results/*-full-s10-cllmfs.
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
E="python -m spacy_el4ner evaluate --cache .el4ner_cache --save-predictions"
[ -d stores/wnut17-train500 ] || python -m spacy_el4ner store build $D/wnut17/train.conll --limit 500 -o stores/wnut17-train500
[ -d stores/politics-train ] || python -m spacy_el4ner store build $D/crossner/politics/train.txt -o stores/politics-train
[ -d stores/ncbi-train500 ] || python -m spacy_el4ner store build $D/ncbi-disease/train.tsv --limit 500 -o stores/ncbi-train500
W="$D/wnut17/test.conll --store stores/wnut17-train500 --output benchmarks/results/wnut17-test-full-s6 --name WNUT-17-test-all-1287-session-6"
N="$D/ncbi-disease/test.tsv --store stores/ncbi-train500 --output benchmarks/results/ncbi-test-full-s6 --name NCBI-disease-test-all-940-session-6"
P="$D/crossner/politics/test.txt --store stores/politics-train --output benchmarks/results/politics-test-full-s6 --name CrossNER-politics-test-all-651-session-6"
W8="$D/wnut17/test.conll --store stores/wnut17-train500 --output benchmarks/results/wnut17-test-full-s8 --name WNUT-17-test-all-1287-session-8"
N8="$D/ncbi-disease/test.tsv --store stores/ncbi-train500 --output benchmarks/results/ncbi-test-full-s8 --name NCBI-disease-test-all-940-session-8"
P8="$D/crossner/politics/test.txt --store stores/politics-train --output benchmarks/results/politics-test-full-s8 --name CrossNER-politics-test-all-651-session-8"
W9="$D/wnut17/test.conll --store stores/wnut17-train500 --output benchmarks/results/wnut17-test-full-s9 --name WNUT-17-test-all-1287-session-9"
N9="$D/ncbi-disease/test.tsv --store stores/ncbi-train500 --output benchmarks/results/ncbi-test-full-s9 --name NCBI-disease-test-all-940-session-9"
P9="$D/crossner/politics/test.txt --store stores/politics-train --output benchmarks/results/politics-test-full-s9 --name CrossNER-politics-test-all-651-session-9"
Q=alone:qwen2.5-coder-0.5b-instruct
S=alone:smollm2-135m-instruct
STEPS=${*:-wnut wnut-cheap ncbi ncbi-cheap wnut-random ncbi-random smollm politics politics-cheap politics-smollm politics-random wnut-s8 ncbi-s8 politics-s8 wnut-s9 ncbi-s9 politics-s9 wnut-cllmfs ncbi-cllmfs}
FT="python -m spacy_el4ner finetune --max-train 500 --dev-limit 20 --epochs 1 --dtype bfloat16 --no-checkpoints --seed 0 --lambda 0.1"
cllmfs() {  # DATASET TRAIN DEV TEST STORE NAME
  local a="adapters/$1-500-cllmfs" m="qwen2.5-coder-0.5b-instruct+adapters/$1-500-cllmfs"
  [ -f "$a/adapter_model.safetensors" ] || $FT --train "$2" --dev "$3" --output "$a"
  $E "$4" --store "$5" --output "benchmarks/results/$1-test-full-s10-cllmfs" --name "$6" \
    --members "qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct,$m" --variants "alone:$m"
}
for step in $STEPS; do
  case $step in
    wnut) $E $W --variants none ;;
    wnut-cheap) $E $W --variants $Q,no-voting,no-validation,no-type-prior,no-trim ;;
    wnut-random) $E $W --variants random ;;
    ncbi) $E $N --variants none ;;
    ncbi-cheap) $E $N --variants $Q,no-voting,no-validation,no-type-prior,no-trim ;;
    ncbi-random) $E $N --variants random ;;
    politics) $E $P --variants none ;;
    politics-cheap) $E $P --variants $Q,no-voting,no-validation,no-type-prior,no-trim ;;
    smollm) $E $W --variants $S; $E $N --variants $S ;;
    politics-smollm) $E $P --variants $S ;;
    politics-random) $E $P --variants random ;;
    wnut-s8) $E $W8 --variants none ;;
    ncbi-s8) $E $N8 --variants none ;;
    politics-s8) $E $P8 --variants none ;;
    wnut-s9) $E $W9 --variants none ;;
    ncbi-s9) $E $N9 --variants none ;;
    politics-s9) $E $P9 --variants none ;;
    wnut-cllmfs) cllmfs wnut17 $D/wnut17/train.conll $D/wnut17/dev.conll $D/wnut17/test.conll stores/wnut17-train500 WNUT-17-test-all-1287-session-10-cllmfs-member ;;
    ncbi-cllmfs) cllmfs ncbi $D/ncbi-disease/train.tsv $D/ncbi-disease/devel.tsv $D/ncbi-disease/test.tsv stores/ncbi-train500 NCBI-disease-test-all-940-session-10-cllmfs-member ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
