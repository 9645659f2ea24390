#!/usr/bin/env bash
# The rows of the headline table in benchmarks/RESULTS.md, one step per row, on each dataset's full test split.
#
# Usage: bash benchmarks/run_full.sh [--data DIR] STEP [DATASET ...]
#   STEP  default             the default pair, shipped settings           -> results/headline/DATASET-test-default.json
#         default-calibrated  the default pair with calibrate's choice on dev
#                                                                           -> results/headline/DATASET-test-default-calibrated.json
#         adapter-views       three views of a CLLMFS-adapted Qwen 0.5B, calibrated on dev
#                                                                           -> results/headline/DATASET-test-adapter-views.json
#         two-gemmas          two CLLMFS-adapted Gemma 3 270M (train sentences 0-499 and 500-999), calibrated on dev
#                                                                           -> results/headline/DATASET-test-two-gemmas.json
#         spacy-ner           spaCy's own NER trained on the store's sentences (train-member), alone
#                                                                           -> results/headline/DATASET-test-spacy-ner.json
#         with-spacy-ner      the default pair with that spaCy NER as a third member (last), calibrated on dev
#                                                                           -> results/headline/DATASET-test-with-spacy-ner.json
#         quality             quality mode (Qwen2.5-Coder-1.5B first) as examples/quality runs it (retrieval from
#                             the 1.5B's zero-shot answer), WNUT-17 test first 100
#                                                                           -> results/subsets/wnut17-test100-quality.json
#         quality-full        quality mode on the full test split, retrieval as the default pair's rows (the 0.5B's
#                             zero-shot answer; hours on 2 cores: resume with the same command)
#                                                                           -> results/headline/DATASET-test-quality.json
#         speed               naive vs fast vs spacy-llm NER.v2, first 100 WNUT-17 test sentences (benchmarks/speed_modes.py)
#                                                                           -> results/speed/benchmark-wnut17-n100.json
#   DATASET  wnut17 politics ncbi (default: all three)
#   --data DIR  the folder holding wnut17/, crossner/politics/ and ncbi-disease/ (default: ../shared/data)
#
# Resumable: every model answer is cached in .el4ner_cache and evaluate checkpoints each run, so the same command
# goes on where it stopped. Run folders (predictions, per-label tables, calibration) go to benchmarks/runs/ (ignored
# by git); the small results.json of each is copied to benchmarks/results/.
# EL4NER_DTYPE (default fastest) sets the members' weights; FT_DTYPE (default fastest) the adapters' training dtype.
# The published numbers ran with bfloat16 on a CPU with native bf16, where fastest is bfloat16.
# EL4NER_RETRIEVER (default spansim) picks the demonstrations: spansim is the retrieval the published runs used
# (el4ner.SpanSimRetriever.v1 with pre_extraction_prefix "", the old default; a member's zero-shot
# answer picks them); sentence is the shipped default (el4ner.SentenceSimRetriever.v1, whole-text similarity, no
# model call), which gives the same demonstrations wherever that zero-shot answer was [] (every dev sentence checked
# with the base Qwen 0.5B).
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
if [ "${1:-}" = "--data" ]; then D=$2; shift 2; fi
STEP=${1:?usage: bash benchmarks/run_full.sh [--data DIR] STEP [DATASET ...]}; shift
DATASETS=${*:-wnut17 politics ncbi}

E="python -m spacy_el4ner evaluate --dtype ${EL4NER_DTYPE:-fastest} --cache .el4ner_cache --save-predictions"
FT="python -m spacy_el4ner finetune --max-train 500 --dev-limit 20 --epochs 1 --dtype ${FT_DTYPE:-fastest} --no-checkpoints --seed 0 --lambda 0.1"
Q=qwen2.5-coder-0.5b-instruct
Q15=qwen2.5-coder-1.5b-instruct
QUALITY=(--set "member.weight={\"$Q15\": 2.0}" --set accept.extraction_quorum=2.0 --set classify.voting=soft --set classify.type_prior=null)
RUNS=benchmarks/runs
mkdir -p $RUNS benchmarks/results/headline benchmarks/results/subsets benchmarks/results/speed

dataset() {  # sets TRAIN DEV DEV_LIMIT TEST STORE TRAIN_LIMIT for one dataset
  case $1 in
    wnut17) TRAIN=$D/wnut17/train.conll DEV=$D/wnut17/dev.conll DEV_LIMIT=400 TEST=$D/wnut17/test.conll TRAIN_LIMIT=500 ;;
    politics) TRAIN=$D/crossner/politics/train.txt DEV=$D/crossner/politics/dev.txt DEV_LIMIT=100 TEST=$D/crossner/politics/test.txt TRAIN_LIMIT=0 ;;
    ncbi) TRAIN=$D/ncbi-disease/train.tsv DEV=$D/ncbi-disease/devel.tsv DEV_LIMIT=100 TEST=$D/ncbi-disease/test.tsv TRAIN_LIMIT=500 ;;
    *) echo "unknown dataset $1 (wnut17, politics, ncbi)" >&2; exit 2 ;;
  esac
  STORE=stores/$1-train
  [ -d "$STORE" ] || python -m spacy_el4ner store build "$TRAIN" --limit $TRAIN_LIMIT -o "$STORE"
}

keep() {  # RUN DEST: copy the run's results.json to benchmarks/results/DEST
  cp "$RUNS/$1/results.json" "benchmarks/results/$2"; echo "-> benchmarks/results/$2"
}

case ${EL4NER_RETRIEVER:-spansim} in
  spansim) RETR=(--retriever spansim --pre-extraction-prefix=)  # "=" with nothing after: the empty prefix
           PRE=(--pre-extraction-by $Q) ;;  # retrieval from the base Qwen's zero-shot answer (a member that lacks it: the first member's)
  sentence) RETR=(--retriever sentence) PRE=() ;;
  *) echo "EL4NER_RETRIEVER: spansim or sentence" >&2; exit 2 ;;
esac
E="$E ${RETR[*]}"
calibrated() {  # NAME MEMBERS TEST_VARIANTS [EXTRA...]: dev run with the union, calibrate, then the full test split once
  local name=$1 members=$2 variants=$3; shift 3
  $E "$DEV" --store "$STORE" --limit $DEV_LIMIT "${PRE[@]}" --members "$members" --variants none "$@" \
    --output "$RUNS/$ds-dev-$name"
  python -m spacy_el4ner calibrate "$RUNS/$ds-dev-$name/predictions-ensemble.jsonl" --output "$RUNS/$ds-dev-$name/calibration.json"
  $E "$TEST" --store "$STORE" "${PRE[@]}" --members "$members" --variants "$variants" "$@" \
    --calibration "$RUNS/$ds-dev-$name/calibration.json" --output "$RUNS/$ds-test-$name"
  keep "$ds-test-$name" "headline/$ds-test-$name.json"
}

adapter() {  # DIR TRAIN [BASE ARGS...]: train a CLLMFS adapter unless there is one
  local dir=$1 train=$2; shift 2
  [ -f "$dir/adapter_model.safetensors" ] || $FT --train "$train" --dev "$DEV" --output "$dir" "$@"
}

member() {  # sets MEMBER: spaCy's NER trained on the store's sentences (20% of them held out for early stopping)
  MEMBER=members/$ds-ner/model-best
  [ -f "$MEMBER/meta.json" ] || python -m spacy_el4ner train-member --store "$STORE" --output "members/$ds-ner"
}

slice() {  # the training sentences 500-999, for a second adapter
  mkdir -p corpus/slices
  [ -f "corpus/slices/$ds-train-500-999.spacy" ] || python -m spacy_el4ner convert "$TRAIN" "corpus/slices/$ds-train-500-999.spacy" --skip 500 --limit 500
}

case $STEP in
  quality)
    dataset wnut17
    python -m spacy_el4ner models pull $Q15
    $E "$TEST" --store "$STORE" --limit 100 --members "$Q15,$Q,smollm2-135m-instruct" --variants "alone:$Q15" \
      "${QUALITY[@]}" --output $RUNS/wnut17-test100-quality
    keep wnut17-test100-quality subsets/wnut17-test100-quality.json
    exit 0 ;;
  speed)
    python benchmarks/speed_modes.py run --n 100 --modes naive,fast,spacy-llm-v2 --out $RUNS/benchmark-wnut17-n100.json
    cp $RUNS/benchmark-wnut17-n100.json benchmarks/results/speed/benchmark-wnut17-n100.json
    exit 0 ;;
esac

for ds in $DATASETS; do
  dataset $ds
  case $STEP in
    default)
      $E "$TEST" --store "$STORE" --variants "alone:$Q" --output "$RUNS/$ds-test-default"
      keep "$ds-test-default" "headline/$ds-test-default.json" ;;
    default-calibrated)
      calibrated default-calibrated "$Q,smollm2-135m-instruct" "alone:$Q" ;;
    quality-full)
      python -m spacy_el4ner models pull $Q15
      $E "$TEST" --store "$STORE" "${PRE[@]}" --members "$Q15,$Q,smollm2-135m-instruct" --variants none "${QUALITY[@]}" --output "$RUNS/$ds-test-quality"
      keep "$ds-test-quality" "headline/$ds-test-quality.json" ;;
    spacy-ner)
      member
      $E "$TEST" --store "$STORE" --members "spacy:$MEMBER" --set validate=null --variants none --output "$RUNS/$ds-test-spacy-ner"
      keep "$ds-test-spacy-ner" "headline/$ds-test-spacy-ner.json" ;;
    with-spacy-ner)
      member
      calibrated with-spacy-ner "$Q,smollm2-135m-instruct,spacy:$MEMBER" none ;;
    adapter-views)
      A="$Q+adapters/$ds-cllmfs"
      adapter "adapters/$ds-cllmfs" "$TRAIN"
      calibrated adapter-views "$A,$A@1,$A@2" "alone:$A" ;;
    two-gemmas)
      python -m spacy_el4ner models pull gemma-3-270m
      G="gemma-3-270m+adapters/$ds-gemma-a" G2="gemma-3-270m+adapters/$ds-gemma-b"
      GARGS=(--base gemma-3-270m --lr 0.0005 --target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
      adapter "adapters/$ds-gemma-a" "$TRAIN" "${GARGS[@]}"
      slice
      adapter "adapters/$ds-gemma-b" "corpus/slices/$ds-train-500-999.spacy" "${GARGS[@]}"
      # a base model extracts with the prompt it was fine-tuned on, under constrained decoding
      PRE=()
      calibrated two-gemmas "$G,$G2" "alone:$G,alone:$G2" \
        --set member.constrained=true --set member.prompt=fine-tuned ;;
    *) echo "unknown step $STEP" >&2; exit 2 ;;
  esac
done
