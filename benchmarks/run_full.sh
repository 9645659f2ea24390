#!/usr/bin/env bash
# Full test splits for benchmarks/RESULTS.md, cheapest runs first. Resumable twice over: model
# responses are cached in .el4ner_cache, and finished variants are kept in each results.json.
# Usage: bash benchmarks/run_full.sh [STEP...]   steps: wnut wnut-cheap ncbi ncbi-cheap wnut-random
#        ncbi-random smollm politics politics-cheap politics-smollm politics-random wnut-s8 ncbi-s8 politics-s8 wnut-s9 ncbi-s9 politics-s9
#        wnut-cllmfs ncbi-cllmfs wnut-dev-rules wnut-cllmfs-quorum politics-dev-rules politics-test200-rules
#        wnut-calibrated politics-calibrated wnut-pair-calibrated politics-pair-calibrated ncbi-pair-calibrated
#        ncbi-calibrated wnut-two-adapters wnut-views politics-views wnut-adapter-views ncbi-adapter-views ncbi-views
#        politics-adapter-views wnut-adapter-views-b wnut-adapter-views-b-full spansim-v4 politics-adapter-views-full
#        wnut-1.5b-views ncbi-adapter-views-b threshold-dev-alone threshold-test-alone ncbi-adapter-views-full threshold-check
#        ncbi-gemma wnut-gemma-adapter wnut-gemma ncbi-two-gemmas ncbi-two-gemmas-full wnut-two-gemmas
#        wnut-views-two-gemmas wnut-views-two-gemmas-full wnut-views-two-gemmas-check
#        (default: the steps up to spansim-v4, in that order)
# "cheap" = the first member alone, no voting, no validation, no type prior, no trim: mostly answered from the cache.
# Outputs: results/*-full-s6 (session 6 defaults, with the span-edge rule); session 5's are in results/*-full.
# Steps wnut-s8 ncbi-s8 politics-s8: the ensemble with session 8's defaults (classify.v2, validation with the
# nearest demonstration) in results/*-full-s8; extraction prompts are unchanged, so it comes from the cache.
# Steps wnut-s9 ncbi-s9 politics-s9: session 9's defaults (classification with the 3 nearest demonstrations).
# Steps wnut-cllmfs ncbi-cllmfs (session 10): the default pair + Qwen with a CLLMFS adapter (one bf16 epoch on the
# store's 500 training sentences, trained first if adapters/ lacks it, ~9 min for WNUT-17) as a third member, and
# the adapted member alone, in results/*-full-s10-cllmfs.
# Step wnut-dev-rules (session 11): on WNUT-17 dev (first 400), how to combine the adapted member with the pair:
# as in wnut-cllmfs, adapted member first (it verifies and breaks ties), and first + weight 2 + extraction quorum 2.
# Step wnut-cllmfs-quorum: the rule chosen there, once on the full WNUT-17 test (results/*-full-s11-adapted-first-quorum).
# Both keep the pre-extraction for retrieval with the base Qwen, so every rule sees the same demonstrations.
# Steps politics-dev-rules (dev, first 100) and politics-test200-rules (test, first 200: the full split would take
# ~1.6 h at 9 s per sentence for three members): the same rules on CrossNER politics, adapter trained first
# (one bf16 epoch, ~25-35 min); the adapted member alone under the same defaults.
# Steps wnut-calibrated politics-calibrated (session 12): `calibrate` chooses accept_finder_sets from the dev union run
# (adapted member first) of the *-dev-rules step, the dev run is repeated with them (the replay must agree with the
# component), then the test split (WNUT-17 all 1,287; politics first 200) runs once with them.
# Steps *-pair-calibrated: the same for the default pair (no adapter): a dev union run (with Qwen alone), calibrate,
# then the full test split with the chosen sets and Qwen alone under the current defaults.
# Step ncbi-calibrated: NCBI-disease with a CLLMFS adapter (trained first if missing, as wnut-cllmfs does): dev (first
# 100) union run with the adapted member first, calibrate, then the first 200 test sentences with the chosen sets
# and the adapted member alone (the full split would take ~1.5 h).
# Step wnut-two-adapters: a second WNUT-17 CLLMFS adapter trained the same way on the next 500 training sentences
# (500-999), then the two adapted members + the base Qwen: dev 400 union run, calibrate, test first 400 with the sets.
# Steps wnut-views politics-views (session 13): three copies of the base Qwen that see different demonstrations
# (member_demo_views: the top k by SpanSim, the next k, the k after), dev union run, calibrate, then the test split
# (WNUT-17 all 1,287; politics first 200) once with the chosen sets. Qwen alone is the *-pair-calibrated steps' run.
# Steps wnut-adapter-views ncbi-adapter-views (session 14): the same with three copies of the CLLMFS-adapted Qwen (the
# adapter of wnut-cllmfs / ncbi-calibrated, trained first if missing), the adapted member alone in the same test run (its
# view-0 answers come from the cache). Step ncbi-views: three base-Qwen views on NCBI-disease (dev 100, test 200), Qwen alone.
# Step politics-adapter-views (session 15): three views of the politics-adapted Qwen, dev 100, test first 200.
# Step wnut-adapter-views-b (session 15): the three adapted WNUT-17 views + the second adapter (wnut-two-adapters'),
# dev 400, test first 400; retrieval from the first adapted view's pre-extraction, as in wnut-adapter-views (where
# the named base Qwen was no member and the views pre-extracted), so the views' answers come from the cache.
# Step wnut-adapter-views-b-full: the same sets on the full WNUT-17 test, with the second adapter alone in the run.
# Step spansim-v4 (session 15): the default pair on dev 100 of each dataset with SpanSimRetriever.v4 (the zero-shot
# pre-extraction answer primed with "["), and NCBI-disease with v3 (the others' v3 runs are the *-pair steps' dev runs).
# Step politics-adapter-views-full (session 16): politics-adapter-views on all 651 test sentences (same dev sets).
# Step wnut-1.5b-views (session 16): three views of Qwen2.5-Coder-1.5B (quality mode's member; type prior off, as
# quality mode) on the first 100 WNUT-17 test sentences, union (no dev calibration), and the 1.5B alone in the same run.
# Step ncbi-adapter-views-b (session 16): as wnut-adapter-views-b on NCBI-disease: the three adapted views of
# ncbi-adapter-views + a second adapter trained on NCBI-disease train sentences 500-999; dev 100, test first 200.
# Steps threshold-dev-alone threshold-test-alone (session 17): the members alone in the dev (and two test) runs of the
# views, so that benchmarks/threshold_replay.py can give each its own dev-chosen min_confidence (mostly cached).
# Step ncbi-adapter-views-full: ncbi-adapter-views on all 940 NCBI-disease test sentences (~1.2 h cold).
# Step ncbi-views-verify-all: the NCBI adapter views with verifier "all" (each view verifies with its own demonstrations).
# Step threshold-check: NCBI test 200 with the dev-chosen min_confidence, to check the replay against the component.
# Step wnut-gemma (session 18): the same on WNUT-17 (dev first 100; test first 200 only: six labels are six
# fine-tuning prompts per sentence for the Gemma member).
# Step ncbi-gemma (session 18): a CLLMFS adapter on Gemma 3 270M *base* (NCBI-disease train first 500, all linear
# layers, lr 5e-4, one bf16 epoch, ~10 min) beside the three NCBI adapter views. It extracts with its fine-tuning prompt
# under constrained decoding. Dev 100 (calibrate -> finder sets), then the full test split (940) with those sets.
# Step wnut-two-gemmas (session 19): as ncbi-two-gemmas on WNUT-17 (dev 100; test first 200, or WNUT_TEST_LIMIT=0 for
# all 1,287: six fine-tuning prompts per sentence and member). The members type spans with the labels they extracted
# them under (finetune_prompt_votes, on by default since session 19).
# Step wnut-views-two-gemmas (session 19): the three WNUT-17 adapter views + both Gemma adapters (dev 100, test first 200);
# wnut-views-two-gemmas-full: the same dev sets on all 1,287 test sentences (WNUT_TEST_LIMIT=400: the first 400).
# Step wnut-views-two-gemmas-check (session 20): the first 16 test sentences again, compared with session 19's run.
# Step politics-gemma (session 21): the Gemma recipe on CrossNER politics (its 200 train sentences, nine labels), alone
# on politics dev first 100 (on an AVX2-only CPU: FT_DTYPE=float32 EL4NER_DTYPE=int8).
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
# Sessions 1-19 ran on a CPU with native bf16 (avx512_bf16), where --dtype fastest is bfloat16. On a CPU without it
# (session 20's AVX2 EPYC) fastest is float32, several times faster there but not the same numbers: EL4NER_DTYPE=bfloat16
# reproduces the earlier runs exactly (slowly), and FT_DTYPE=float32 trains adapters there in reasonable time.
E="python -m spacy_el4ner evaluate --dtype ${EL4NER_DTYPE:-fastest} --cache .el4ner_cache --save-predictions"
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
Q0=qwen2.5-coder-0.5b-instruct
Q=alone:$Q0
S=alone:smollm2-135m-instruct
STEPS=${*:-wnut wnut-cheap ncbi ncbi-cheap wnut-random ncbi-random smollm politics politics-cheap politics-smollm politics-random wnut-s8 ncbi-s8 politics-s8 wnut-s9 ncbi-s9 politics-s9 wnut-cllmfs ncbi-cllmfs wnut-dev-rules wnut-cllmfs-quorum politics-dev-rules politics-test200-rules wnut-calibrated politics-calibrated wnut-pair-calibrated politics-pair-calibrated ncbi-pair-calibrated ncbi-calibrated wnut-two-adapters wnut-views politics-views wnut-adapter-views ncbi-adapter-views ncbi-views politics-adapter-views wnut-adapter-views-b wnut-adapter-views-b-full spansim-v4}
FT="python -m spacy_el4ner finetune --max-train 500 --dev-limit 20 --epochs 1 --dtype ${FT_DTYPE:-bfloat16} --no-checkpoints --seed 0 --lambda 0.1"
adapter() { [ -f "$1/adapter_model.safetensors" ] || $FT --train "$2" --dev "$3" --output "$1"; }  # DIR TRAIN DEV: unless trained
wadapter() { adapter adapters/wnut17-500-cllmfs $D/wnut17/train.conll $D/wnut17/dev.conll; }
nadapter() { adapter adapters/ncbi-500-cllmfs $D/ncbi-disease/train.tsv $D/ncbi-disease/devel.tsv; }
cllmfs() {  # DATASET TRAIN DEV TEST STORE NAME
  local a="adapters/$1-500-cllmfs" m="qwen2.5-coder-0.5b-instruct+adapters/$1-500-cllmfs"
  adapter "$a" "$2" "$3"
  $E "$4" --store "$5" --output "benchmarks/results/$1-test-full-s10-cllmfs" --name "$6" \
    --members "qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct,$m" --variants "alone:$m"
}
WA=qwen2.5-coder-0.5b-instruct+adapters/wnut17-500-cllmfs
WB=qwen2.5-coder-0.5b-instruct+adapters/wnut17-500b-cllmfs  # the same training on WNUT-17 train sentences 500-999
slice500() {  # DATASET TRAIN: train sentences 500-999 as a DocBin, corpus/slices/DATASET-train-500-999.spacy
  local slice="corpus/slices/$1-train-500-999.spacy"
  mkdir -p corpus/slices
  [ -f "$slice" ] || python -c "import spacy; from spacy.tokens import DocBin; from spacy_el4ner.readers import read_docs; \
DocBin(docs=read_docs('$2', spacy.blank('en'))[500:1000]).to_disk('$slice')"
}
badapter() {  # DATASET TRAIN DEV: the same training on train sentences 500-999, into adapters/DATASET-500b-cllmfs
  slice500 "$1" "$2"
  adapter "adapters/$1-500b-cllmfs" "corpus/slices/$1-train-500-999.spacy" "$3"
}
wbadapter() { badapter wnut17 $D/wnut17/train.conll $D/wnut17/dev.conll; }
NB=qwen2.5-coder-0.5b-instruct+adapters/ncbi-500b-cllmfs  # the same training on NCBI-disease train sentences 500-999
nbadapter() { badapter ncbi $D/ncbi-disease/train.tsv $D/ncbi-disease/devel.tsv; }
WFIRST="$WA,qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct"
WRULE=(--set "member_weights={\"$WA\": 2.0}" --set extraction_quorum=2.0)
wdev() {  # OUTPUT NAME MEMBERS EXTRA...  (WNUT-17 dev, first 400; retrieval from the base Qwen's pre-extraction)
  local out=$1 name=$2 members=$3; shift 3
  $E $D/wnut17/dev.conll --store stores/wnut17-train500 --limit 400 --pre-extraction-by qwen2.5-coder-0.5b-instruct \
    --output "benchmarks/results/$out" --name "$name" --members "$members" "$@"
}
PA=qwen2.5-coder-0.5b-instruct+adapters/politics-cllmfs
PFIRST="$PA,qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct"
PRULE=(--set "member_weights={\"$PA\": 2.0}" --set extraction_quorum=2.0)
padapter() { adapter adapters/politics-cllmfs $D/crossner/politics/train.txt $D/crossner/politics/dev.txt; }
finder_sets() {  # DEV_RUN_DIR: calibrate on its union predictions, print the accept_finder_sets JSON
  python -m spacy_el4ner calibrate "benchmarks/results/$1/predictions-ensemble.jsonl" --output "benchmarks/results/$1/calibration.json" >&2
  python -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1]))['accept_finder_sets']))" "benchmarks/results/$1/calibration.json"
}
pair_calibrated() {  # NAME DEV DEV_LIMIT TEST STORE
  local dev="$1-dev$3-s12-pair" test="$1-test-full-s12-pair-calibrated" sets
  $E "$2" --store "$5" --limit "$3" --output "benchmarks/results/$dev" --name "$1-dev-$3-default-pair" --variants "$Q"
  sets=$(finder_sets "$dev")
  $E "$4" --store "$5" --output "benchmarks/results/$test" --name "$1-test-full-default-pair-calibrated" \
    --variants "$Q" --set "accept_finder_sets=$sets"
}
QV="qwen2.5-coder-0.5b-instruct,qwen2.5-coder-0.5b-instruct@1,qwen2.5-coder-0.5b-instruct@2"
viewsdev() {  # NAME DEV DEV_LIMIT STORE MEMBERS TAG PRE_EXTRACTION_BY VARIANTS: the dev run of views() (with VARIANTS)
  $E "$2" --store "$4" --limit "$3" --pre-extraction-by "$7" --members "$5" --variants "$8" \
    --output "benchmarks/results/$1-dev$3-$6" --name "$1-dev-$3-${6/s13-views/three-views}"
}
viewstest() {  # NAME TEST TEST_LIMIT STORE MEMBERS TAG PRE_EXTRACTION_BY VARIANTS DEV_LIMIT: views()' test run, sets from its dev run
  local sets; sets=$(finder_sets "$1-dev$9-$6")
  $E "$2" --store "$4" --limit "$3" --pre-extraction-by "$7" --members "$5" --variants "$8" --set "accept_finder_sets=$sets" \
    --output "benchmarks/results/$1-test$3-$6-calibrated" --name "$1-test-$3-${6/s13-views/three-views}-calibrated"
}
views() {  # NAME DEV DEV_LIMIT TEST TEST_LIMIT STORE [MEMBERS TAG TEST_VARIANTS PRE_EXTRACTION_BY]
  local members=${7:-$QV} tag=${8:-s13-views} tv=${9:-none} pre=${10:-qwen2.5-coder-0.5b-instruct}
  viewsdev "$1" "$2" "$3" "$6" "$members" "$tag" "$pre" none
  viewstest "$1" "$4" "$5" "$6" "$members" "$tag" "$pre" "$tv" "$3"
}
NA=qwen2.5-coder-0.5b-instruct+adapters/ncbi-500-cllmfs
NG=gemma-3-270m+adapters/ncbi-500-gemma-cllmfs
gadapter() {  # DIR TRAIN DEV: a Gemma 3 270M base adapter unless trained (all linear layers, lr 5e-4: a base model has
  # the answer format to learn too)
  python -m spacy_el4ner models pull gemma-3-270m
  [ -f "$1/adapter_model.safetensors" ] || $FT --base gemma-3-270m --train "$2" --dev "$3" --output "$1" --lr 0.0005 \
    --target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
}
ngadapter() { gadapter adapters/ncbi-500-gemma-cllmfs $D/ncbi-disease/train.tsv $D/ncbi-disease/devel.tsv; }
WG=gemma-3-270m+adapters/wnut17-500-gemma-cllmfs
wgadapter() { gadapter adapters/wnut17-500-gemma-cllmfs $D/wnut17/train.conll $D/wnut17/dev.conll; }  # WNUT-17 train first 500
NG2=gemma-3-270m+adapters/ncbi-500b-gemma-cllmfs  # the same Gemma recipe on NCBI-disease train sentences 500-999
GSET2=(--set "constrained_extraction=[\"$NG\", \"$NG2\"]" --set "finetune_prompt_members=[\"$NG\", \"$NG2\"]")
GSET=(--set "constrained_extraction=[\"$NG\"]" --set "finetune_prompt_members=[\"$NG\"]")
WG2=gemma-3-270m+adapters/wnut17-500b-gemma-cllmfs  # the same Gemma recipe on WNUT-17 train sentences 500-999
WGSET2=(--set "constrained_extraction=[\"$WG\", \"$WG2\"]" --set "finetune_prompt_members=[\"$WG\", \"$WG2\"]")
PG=gemma-3-270m+adapters/politics-gemma-cllmfs
PGSET=(--set "constrained_extraction=[\"$PG\"]" --set "finetune_prompt_members=[\"$PG\"]")
for step in $STEPS; do
  case $step in
    politics-gemma)
      gadapter adapters/politics-gemma-cllmfs $D/crossner/politics/train.txt $D/crossner/politics/dev.txt
      $E $D/crossner/politics/dev.txt --store stores/politics-train --limit 100 --members "$PG" --variants none "${PGSET[@]}" \
        --output benchmarks/results/politics-dev100-s21-gemma --name politics-dev-100-gemma-adapter ;;
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
    wnut-dev-rules)
      wadapter
      wdev wnut17-dev400-s11 WNUT-17-dev-400-three-members "qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct,$WA" --variants "alone:$WA"
      wdev wnut17-dev400-s11-adapted-first WNUT-17-dev-400-adapted-first "$WFIRST" --variants none
      wdev wnut17-dev400-s11-adapted-first-quorum WNUT-17-dev-400-adapted-first-w2-quorum2 "$WFIRST" --variants none "${WRULE[@]}" ;;
    wnut-cllmfs-quorum)
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --pre-extraction-by qwen2.5-coder-0.5b-instruct --variants none \
        --output benchmarks/results/wnut17-test-full-s11-adapted-first-quorum --name WNUT-17-test-all-1287-session-11-adapted-first-w2-quorum2 \
        --members "$WFIRST" "${WRULE[@]}" ;;
    politics-dev-rules)
      padapter
      PD="$D/crossner/politics/dev.txt --store stores/politics-train --limit 100 --pre-extraction-by qwen2.5-coder-0.5b-instruct"
      $E $PD --output benchmarks/results/politics-dev100-s11 --name CrossNER-politics-dev-100-three-members \
        --members "qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct,$PA" --variants "alone:$PA"
      $E $PD --output benchmarks/results/politics-dev100-s11-adapted-first --name CrossNER-politics-dev-100-adapted-first \
        --members "$PFIRST" --variants none
      $E $PD --output benchmarks/results/politics-dev100-s11-adapted-first-quorum --name CrossNER-politics-dev-100-adapted-first-w2-quorum2 \
        --members "$PFIRST" --variants none "${PRULE[@]}" ;;
    politics-test200-rules)
      padapter
      PT="$D/crossner/politics/test.txt --store stores/politics-train --limit 200 --pre-extraction-by qwen2.5-coder-0.5b-instruct"
      $E $PT --output benchmarks/results/politics-test200-s11-adapted-first --name CrossNER-politics-test-first-200-adapted-first \
        --members "$PFIRST" --variants "alone:$PA"
      $E $PT --output benchmarks/results/politics-test200-s11-adapted-first-quorum --name CrossNER-politics-test-first-200-adapted-first-w2-quorum2 \
        --members "$PFIRST" --variants none "${PRULE[@]}" ;;
    wnut-calibrated)
      [ -f benchmarks/results/wnut17-dev400-s11-adapted-first/predictions-ensemble.jsonl ] || bash "$0" wnut-dev-rules
      WSETS=$(finder_sets wnut17-dev400-s11-adapted-first)
      wdev wnut17-dev400-s12-calibrated WNUT-17-dev-400-adapted-first-calibrated "$WFIRST" --variants none --set "accept_finder_sets=$WSETS"
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --pre-extraction-by qwen2.5-coder-0.5b-instruct --variants none \
        --output benchmarks/results/wnut17-test-full-s12-calibrated --name WNUT-17-test-all-1287-session-12-calibrated \
        --members "$WFIRST" --set "accept_finder_sets=$WSETS" ;;
    politics-calibrated)
      [ -f benchmarks/results/politics-dev100-s11-adapted-first/predictions-ensemble.jsonl ] || bash "$0" politics-dev-rules
      PSETS=$(finder_sets politics-dev100-s11-adapted-first)
      PT="$D/crossner/politics/test.txt --store stores/politics-train --limit 200 --pre-extraction-by qwen2.5-coder-0.5b-instruct"
      $E $PT --output benchmarks/results/politics-test200-s12-calibrated --name CrossNER-politics-test-first-200-calibrated \
        --members "$PFIRST" --variants none --set "accept_finder_sets=$PSETS" ;;
    wnut-pair-calibrated) pair_calibrated wnut17 $D/wnut17/dev.conll 400 $D/wnut17/test.conll stores/wnut17-train500 ;;
    politics-pair-calibrated) pair_calibrated politics $D/crossner/politics/dev.txt 100 $D/crossner/politics/test.txt stores/politics-train ;;
    ncbi-pair-calibrated) pair_calibrated ncbi $D/ncbi-disease/devel.tsv 200 $D/ncbi-disease/test.tsv stores/ncbi-train500 ;;
    ncbi-calibrated)
      nadapter
      NOPT="--store stores/ncbi-train500 --pre-extraction-by qwen2.5-coder-0.5b-instruct --members $NA,qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct"
      $E $D/ncbi-disease/devel.tsv --limit 100 $NOPT --output benchmarks/results/ncbi-dev100-s12-adapted-first \
        --name NCBI-disease-dev-100-adapted-first --variants "alone:$NA"
      NSETS=$(finder_sets ncbi-dev100-s12-adapted-first)
      $E $D/ncbi-disease/test.tsv --limit 200 $NOPT --output benchmarks/results/ncbi-test200-s12-calibrated \
        --name NCBI-disease-test-first-200-calibrated --variants "alone:$NA" --set "accept_finder_sets=$NSETS" ;;
    wnut-two-adapters)
      wadapter
      wbadapter
      TWO="--store stores/wnut17-train500 --pre-extraction-by qwen2.5-coder-0.5b-instruct --members $WA,$WB,qwen2.5-coder-0.5b-instruct --variants alone:$WB"
      $E $D/wnut17/dev.conll --limit 400 $TWO --output benchmarks/results/wnut17-dev400-s12-two-adapters --name WNUT-17-dev-400-two-adapters-and-qwen
      TSETS=$(finder_sets wnut17-dev400-s12-two-adapters)
      $E $D/wnut17/test.conll --limit 400 $TWO --set "accept_finder_sets=$TSETS" --output benchmarks/results/wnut17-test400-s12-two-adapters \
        --name WNUT-17-test-first-400-two-adapters-and-qwen-calibrated ;;
    wnut-views) views wnut17 $D/wnut17/dev.conll 400 $D/wnut17/test.conll 0 stores/wnut17-train500 ;;
    wnut-adapter-views) wadapter; views wnut17 $D/wnut17/dev.conll 400 $D/wnut17/test.conll 0 stores/wnut17-train500 "$WA,$WA@1,$WA@2" s14-adapter-views "alone:$WA" ;;
    ncbi-adapter-views) nadapter; views ncbi $D/ncbi-disease/devel.tsv 100 $D/ncbi-disease/test.tsv 200 stores/ncbi-train500 "$NA,$NA@1,$NA@2" s14-adapter-views "alone:$NA" ;;
    ncbi-views) views ncbi $D/ncbi-disease/devel.tsv 100 $D/ncbi-disease/test.tsv 200 stores/ncbi-train500 "$QV" s14-views "$Q" ;;
    politics-adapter-views-full) padapter; views politics $D/crossner/politics/dev.txt 100 $D/crossner/politics/test.txt 0 stores/politics-train "$PA,$PA@1,$PA@2" s15-adapter-views "alone:$PA" ;;
    politics-adapter-views) padapter; views politics $D/crossner/politics/dev.txt 100 $D/crossner/politics/test.txt 200 stores/politics-train "$PA,$PA@1,$PA@2" s15-adapter-views "alone:$PA" ;;
    wnut-adapter-views-b) wadapter; wbadapter
      views wnut17 $D/wnut17/dev.conll 400 $D/wnut17/test.conll 400 stores/wnut17-train500 "$WA,$WA@1,$WA@2,$WB" s15-adapter-views-b none "$WA" ;;
    wnut-adapter-views-b-full) wadapter; wbadapter
      views wnut17 $D/wnut17/dev.conll 400 $D/wnut17/test.conll 0 stores/wnut17-train500 "$WA,$WA@1,$WA@2,$WB" s15-adapter-views-b "alone:$WB" "$WA" ;;
    spansim-v4)
      V4="--variants none --pre-extraction-prefix ["
      $E $D/wnut17/dev.conll --store stores/wnut17-train500 --limit 100 $V4 --output benchmarks/results/wnut17-dev100-s15-v4-pair --name wnut17-dev-100-pair-spansim-v4
      $E $D/crossner/politics/dev.txt --store stores/politics-train --limit 100 $V4 --output benchmarks/results/politics-dev100-s15-v4-pair --name politics-dev-100-pair-spansim-v4
      $E $D/ncbi-disease/devel.tsv --store stores/ncbi-train500 --limit 100 $V4 --output benchmarks/results/ncbi-dev100-s15-v4-pair --name ncbi-dev-100-pair-spansim-v4
      $E $D/ncbi-disease/devel.tsv --store stores/ncbi-train500 --limit 100 --variants none --output benchmarks/results/ncbi-dev100-s15-v3-pair --name ncbi-dev-100-pair-spansim-v3 ;;
    wnut-1.5b-views) Q15=qwen2.5-coder-1.5b-instruct
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --limit 100 --pre-extraction-by $Q15 --members "$Q15,$Q15@1,$Q15@2" \
        --variants "alone:$Q15" --set type_prior=null --output benchmarks/results/wnut17-test100-s16-1.5b-views --name wnut17-test-100-1.5b-views ;;
    ncbi-adapter-views-b) nadapter; nbadapter
      views ncbi $D/ncbi-disease/devel.tsv 100 $D/ncbi-disease/test.tsv 200 stores/ncbi-train500 "$NA,$NA@1,$NA@2,$NB" s16-adapter-views-b "alone:$NB" "$NA" ;;
    threshold-dev-alone)  # session 17: the members alone on the dev runs of the views, to calibrate their thresholds too
      viewsdev ncbi $D/ncbi-disease/devel.tsv 100 stores/ncbi-train500 "$NA,$NA@1,$NA@2,$NB" s16-adapter-views-b "$NA" "alone:$NA,alone:$NB"
      viewsdev ncbi $D/ncbi-disease/devel.tsv 100 stores/ncbi-train500 "$NA,$NA@1,$NA@2" s14-adapter-views "$Q0" "alone:$NA"
      viewsdev ncbi $D/ncbi-disease/devel.tsv 100 stores/ncbi-train500 "$QV" s14-views "$Q0" "$Q"
      viewsdev politics $D/crossner/politics/dev.txt 100 stores/politics-train "$PA,$PA@1,$PA@2" s15-adapter-views "$Q0" "alone:$PA"
      viewsdev politics $D/crossner/politics/dev.txt 100 stores/politics-train "$QV" s13-views "$Q0" "$Q"
      viewsdev wnut17 $D/wnut17/dev.conll 400 stores/wnut17-train500 "$WA,$WA@1,$WA@2,$WB" s15-adapter-views-b "$WA" "alone:$WA,alone:$WB"
      viewsdev wnut17 $D/wnut17/dev.conll 400 stores/wnut17-train500 "$WA,$WA@1,$WA@2" s14-adapter-views "$Q0" "alone:$WA"
      viewsdev wnut17 $D/wnut17/dev.conll 400 stores/wnut17-train500 "$QV" s13-views "$Q0" "$Q" ;;
    ncbi-adapter-views-full)  # session 17: ncbi-adapter-views on the full NCBI-disease test split (940)
      nadapter; views ncbi $D/ncbi-disease/devel.tsv 100 $D/ncbi-disease/test.tsv 0 stores/ncbi-train500 "$NA,$NA@1,$NA@2" s14-adapter-views "alone:$NA" ;;
    ncbi-views-verify-all)  # session 17: ncbi-adapter-views with every view verifying (each with its own demonstrations)
      vm="$NA,$NA@1,$NA@2"
      $E $D/ncbi-disease/devel.tsv --store stores/ncbi-train500 --limit 100 --pre-extraction-by "$Q0" --members "$vm" \
        --variants none --set 'verifier="all"' --output benchmarks/results/ncbi-dev100-s17-views-verify-all --name ncbi-dev-100-adapter-views-verify-all
      sets=$(finder_sets ncbi-dev100-s17-views-verify-all)
      $E $D/ncbi-disease/test.tsv --store stores/ncbi-train500 --limit 200 --pre-extraction-by "$Q0" --members "$vm" \
        --variants none --set 'verifier="all"' --set "accept_finder_sets=$sets" \
        --output benchmarks/results/ncbi-test200-s17-views-verify-all-calibrated --name ncbi-test-200-adapter-views-verify-all-calibrated ;;
    threshold-check)  # session 17: the component with the dev-chosen min_confidence gives the replay's F1 (47.1, A alone 45.1)
      sets=$(finder_sets ncbi-dev100-s14-adapter-views)
      $E $D/ncbi-disease/test.tsv --store stores/ncbi-train500 --limit 200 --pre-extraction-by "$Q0" --members "$NA,$NA@1,$NA@2" \
        --variants "alone:$NA" --set "accept_finder_sets=$sets" --set min_confidence=0.425 \
        --output benchmarks/results/ncbi-test200-s17-adapter-views-threshold --name ncbi-test-200-adapter-views-min-confidence-0.425 ;;
    threshold-test-alone)  # session 17: the first adapter alone where the test run of the views lacked it
      viewstest ncbi $D/ncbi-disease/test.tsv 200 stores/ncbi-train500 "$NA,$NA@1,$NA@2,$NB" s16-adapter-views-b "$NA" "alone:$NA" 100
      viewstest wnut17 $D/wnut17/test.conll 0 stores/wnut17-train500 "$WA,$WA@1,$WA@2,$WB" s15-adapter-views-b "$WA" "alone:$WA" 400 ;;
    wnut-gemma-adapter) wgadapter ;;
    ncbi-two-gemmas)  # session 18: two Gemma adapters trained on different NCBI-disease sentences; dev 100, test first 200
      ngadapter; slice500 ncbi $D/ncbi-disease/train.tsv
      gadapter adapters/ncbi-500b-gemma-cllmfs corpus/slices/ncbi-train-500-999.spacy $D/ncbi-disease/devel.tsv
      $E $D/ncbi-disease/devel.tsv --store stores/ncbi-train500 --limit 100 --members "$NG,$NG2" --variants "alone:$NG,alone:$NG2" \
        "${GSET2[@]}" --output benchmarks/results/ncbi-dev100-s18-two-gemmas --name ncbi-dev-100-two-gemma-adapters
      sets=$(finder_sets ncbi-dev100-s18-two-gemmas)
      $E $D/ncbi-disease/test.tsv --store stores/ncbi-train500 --limit 200 --members "$NG,$NG2" --variants "alone:$NG,alone:$NG2" \
        "${GSET2[@]}" --set "accept_finder_sets=$sets" --output benchmarks/results/ncbi-test200-s18-two-gemmas-calibrated \
        --name ncbi-test-200-two-gemma-adapters-calibrated ;;
    ncbi-two-gemmas-full)  # session 18: ncbi-two-gemmas on the full test split (940), the sets of its dev run
      [ -f benchmarks/results/ncbi-dev100-s18-two-gemmas/predictions-ensemble.jsonl ] || bash "$0" ncbi-two-gemmas
      sets=$(finder_sets ncbi-dev100-s18-two-gemmas)
      $E $D/ncbi-disease/test.tsv --store stores/ncbi-train500 --members "$NG,$NG2" --variants "alone:$NG,alone:$NG2" \
        "${GSET2[@]}" --set "accept_finder_sets=$sets" --output benchmarks/results/ncbi-test0-s18-two-gemmas-calibrated \
        --name ncbi-test-all-940-two-gemma-adapters-calibrated ;;
    wnut-gemma)  # session 18
      wadapter; wgadapter
      GM="$WA,$WA@1,$WA@2,$WG"
      # (session 18 ran before finetune_prompt_votes: the Gemma member answered the classification prompt)
      WGSET=(--set "constrained_extraction=[\"$WG\"]" --set "finetune_prompt_members=[\"$WG\"]" --set finetune_prompt_votes=false)
      $E $D/wnut17/dev.conll --store stores/wnut17-train500 --limit 100 --pre-extraction-by "$WA,$WA@1,$WA@2" --members "$GM" \
        --variants "alone:$WG" "${WGSET[@]}" --output benchmarks/results/wnut17-dev100-s18-adapter-views-gemma --name wnut17-dev-100-adapter-views-and-gemma-adapter
      sets=$(finder_sets wnut17-dev100-s18-adapter-views-gemma)
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --limit 200 --pre-extraction-by "$WA,$WA@1,$WA@2" --members "$GM" \
        --variants "alone:$WG,alone:$WA" "${WGSET[@]}" --set "accept_finder_sets=$sets" \
        --output benchmarks/results/wnut17-test200-s18-adapter-views-gemma-calibrated --name wnut17-test-200-adapter-views-and-gemma-adapter-calibrated ;;
    wnut-two-gemmas)  # session 19: two Gemma adapters trained on different WNUT-17 sentences (0-499, 500-999), voting
      # with the labels they extracted under (finetune_prompt_votes); dev 100 -> calibrate -> test first 200
      wgadapter; slice500 wnut17 $D/wnut17/train.conll
      gadapter adapters/wnut17-500b-gemma-cllmfs corpus/slices/wnut17-train-500-999.spacy $D/wnut17/dev.conll
      $E $D/wnut17/dev.conll --store stores/wnut17-train500 --limit 100 --members "$WG,$WG2" --variants "alone:$WG,alone:$WG2" \
        "${WGSET2[@]}" --output benchmarks/results/wnut17-dev100-s19-two-gemmas --name wnut17-dev-100-two-gemma-adapters
      sets=$(finder_sets wnut17-dev100-s19-two-gemmas)
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --limit "${WNUT_TEST_LIMIT:-200}" --members "$WG,$WG2" \
        --variants "alone:$WG,alone:$WG2" "${WGSET2[@]}" --set "accept_finder_sets=$sets" \
        --output "benchmarks/results/wnut17-test${WNUT_TEST_LIMIT:-200}-s19-two-gemmas-calibrated" \
        --name "wnut17-test-${WNUT_TEST_LIMIT:-200}-two-gemma-adapters-calibrated" ;;
    wnut-views-two-gemmas)  # session 19: the three WNUT-17 adapter views (wnut-gemma's) + both Gemma adapters, which vote
      # with their extracted labels; retrieval from the views' pre-extraction, as in wnut-gemma; dev 100 -> test first 200
      wadapter; wgadapter
      GM="$WA,$WA@1,$WA@2,$WG,$WG2"
      $E $D/wnut17/dev.conll --store stores/wnut17-train500 --limit 100 --pre-extraction-by "$WA,$WA@1,$WA@2" --members "$GM" \
        --variants none "${WGSET2[@]}" --output benchmarks/results/wnut17-dev100-s19-views-two-gemmas --name wnut17-dev-100-adapter-views-and-two-gemma-adapters
      sets=$(finder_sets wnut17-dev100-s19-views-two-gemmas)
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --limit 200 --pre-extraction-by "$WA,$WA@1,$WA@2" --members "$GM" \
        --variants "alone:$WA" "${WGSET2[@]}" --set "accept_finder_sets=$sets" \
        --output benchmarks/results/wnut17-test200-s19-views-two-gemmas-calibrated --name wnut17-test-200-adapter-views-and-two-gemma-adapters-calibrated ;;
    wnut-views-two-gemmas-full)  # session 19: wnut-views-two-gemmas on all 1,287 test sentences, the sets of its dev run
      # (~3.5 h cold on this CPU: the Gemma prompts; the views' answers are cached by wnut-adapter-views). Session 20: the
      # adapters are trained if missing; the run checkpoints after every batch (commit the partial-* files to go on on a
      # fresh clone) and takes the first 400 sentences from the committed WNUT_TEST_LIMIT=400 run (--prefix-run), which
      # is sound only where wnut-views-two-gemmas-check found this machine's adapters answering exactly as session 19's.
      [ -f benchmarks/results/wnut17-dev100-s19-views-two-gemmas/predictions-ensemble.jsonl ] || bash "$0" wnut-views-two-gemmas
      wadapter; wgadapter; slice500 wnut17 $D/wnut17/train.conll
      gadapter adapters/wnut17-500b-gemma-cllmfs corpus/slices/wnut17-train-500-999.spacy $D/wnut17/dev.conll
      GM="$WA,$WA@1,$WA@2,$WG,$WG2"
      sets=$(finder_sets wnut17-dev100-s19-views-two-gemmas)
      n=${WNUT_TEST_LIMIT:-0}  # 0: all 1,287 (WNUT_TEST_LIMIT=400: the first 400)
      P400=benchmarks/results/wnut17-test400-s19-views-two-gemmas-calibrated
      prefix=(); [ "$n" = 0 ] && [ -f $P400/predictions-ensemble.jsonl ] && prefix=(--prefix-run $P400)
      $E $D/wnut17/test.conll --store stores/wnut17-train500 --limit "$n" --pre-extraction-by "$WA,$WA@1,$WA@2" --members "$GM" \
        --variants "alone:$WA,alone:$WG,alone:$WG2" "${WGSET2[@]}" --set "accept_finder_sets=$sets" "${prefix[@]}" \
        --output "benchmarks/results/wnut17-test$n-s19-views-two-gemmas-calibrated" --name "wnut17-test-$n-adapter-views-and-two-gemma-adapters-calibrated" ;;
    wnut-views-two-gemmas-check)  # session 20: do this machine's adapters (trained if missing) answer as session 19's did?
      # The first 16 test sentences of wnut-views-two-gemmas-full, compared row by row (entities, candidates, votes and
      # scores) with the committed first-400 run; exit 1 if any differs.
      WNUT_TEST_LIMIT=16 bash "$0" wnut-views-two-gemmas-full
      python - <<'PY'
import json, sys
a, b = "benchmarks/results/wnut17-test16-s19-views-two-gemmas-calibrated", "benchmarks/results/wnut17-test400-s19-views-two-gemmas-calibrated"
bad = 0
for f in ["ensemble", "alone_qwen2.5-coder-0.5b-instruct_adapters_wnut17-500-cllmfs", "alone_gemma-3-270m_adapters_wnut17-500-gemma-cllmfs", "alone_gemma-3-270m_adapters_wnut17-500b-gemma-cllmfs"]:
    x = [json.loads(l) for l in open(f"{a}/predictions-{f}.jsonl")]
    y = [json.loads(l) for l in open(f"{b}/predictions-{f}.jsonl")][: len(x)]
    diff = [i for i, (r, s) in enumerate(zip(x, y)) if r != s]
    bad += len(diff)
    print(f"{f}: {len(x) - len(diff)} of {len(x)} sentences identical" + (f"; first differing: {diff[0] + 1}" if diff else ""))
sys.exit(1 if bad else 0)
PY
      ;;
    ncbi-gemma)  # session 18
      nadapter; ngadapter
      GM="$NA,$NA@1,$NA@2,$NG"
      $E $D/ncbi-disease/devel.tsv --store stores/ncbi-train500 --limit 100 --pre-extraction-by "$NA,$NA@1,$NA@2" --members "$GM" \
        --variants "alone:$NG" "${GSET[@]}" --output benchmarks/results/ncbi-dev100-s18-adapter-views-gemma-ft --name ncbi-dev-100-adapter-views-and-gemma-adapter
      sets=$(finder_sets ncbi-dev100-s18-adapter-views-gemma-ft)
      $E $D/ncbi-disease/test.tsv --store stores/ncbi-train500 --pre-extraction-by "$NA,$NA@1,$NA@2" --members "$GM" \
        --variants "alone:$NG" "${GSET[@]}" --set "accept_finder_sets=$sets" \
        --output benchmarks/results/ncbi-test0-s18-adapter-views-gemma-calibrated --name ncbi-test-all-940-adapter-views-and-gemma-adapter-calibrated ;;
    politics-views) views politics $D/crossner/politics/dev.txt 100 $D/crossner/politics/test.txt 200 stores/politics-train ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
