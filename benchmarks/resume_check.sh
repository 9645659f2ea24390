#!/usr/bin/env bash
# Does an evaluate run killed midway, resumed on a "fresh machine" (only its output folder, an empty response
# cache), give the same results as an uninterrupted run? Real models, WNUT-17 dev first N (default 24).
# Usage: bash benchmarks/resume_check.sh                    (Qwen 0.5B alone)
#        MEMBER=gemma-3-270m+adapters/wnut17-500-gemma-cllmfs-fp32 FT_PROMPT=1 bash benchmarks/resume_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MEMBER:-qwen2.5-coder-0.5b-instruct}; N=${N:-24}; W=${WORK:-/tmp/el4ner-resume-check}
sets=(); [ -n "${FT_PROMPT:-}" ] && sets=(--set member.constrained=true --set member.prompt=fine-tuned)
[ -d stores/wnut17-train500 ] || python -m spacy_el4ner store build ../shared/data/wnut17/train.conll --limit 500 -o stores/wnut17-train500
ev() { python -m spacy_el4ner evaluate ../shared/data/wnut17/dev.conll --store stores/wnut17-train500 --limit "$N" --members "$M" \
  "${sets[@]}" --variants none --save-predictions "$@"; }
rm -rf "$W"; mkdir -p "$W"
ev --cache "$W/cache-whole" --output "$W/whole" > "$W/whole.log" 2>&1
ev --cache "$W/cache-cut" --output "$W/cut" > "$W/cut1.log" 2>&1 &  # killed once 2 batches (16 sentences) are checkpointed
pid=$!
until python -c "import json,sys; sys.exit(0 if json.load(open('$W/cut/partial-ensemble.json'))['done'] >= 16 else 1)" 2>/dev/null; do sleep 2; done
kill $pid; wait $pid || true
ev --cache "$W/cache-fresh" --output "$W/cut" > "$W/cut2.log" 2>&1  # a fresh machine: the folder, no cache
python - "$W" <<'PY'
import json, sys
w, c = (json.load(open(f"{sys.argv[1]}/{d}/results.json"))["results"]["ensemble"] for d in ("whole", "cut"))
same = open(f"{sys.argv[1]}/whole/predictions-ensemble.jsonl").read() == open(f"{sys.argv[1]}/cut/predictions-ensemble.jsonl").read()
print(f"uninterrupted P/R/F {w['p']}/{w['r']}/{w['f']}; resumed {c['p']}/{c['r']}/{c['f']}, segments {[(s['first'], s['done']) for s in c['segments']]}")
print(f"same stage breakdown: {w['stages'] == c['stages']}; same predictions file: {same}")
sys.exit(0 if same and w['stages'] == c['stages'] and (w['p'], w['r'], w['f']) == (c['p'], c['r'], c['f']) else 1)
PY
