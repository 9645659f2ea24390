#!/usr/bin/env bash
# The checks for a lent GPU machine (torch + CUDA, no spaCy, no package index, 64 MiB travels):
# 1. the GPU tests (pytest -m gpu: decoding, scoring, the pipeline and CLLMFS training on CUDA
#    give the CPU's results, on tiny random-weight models), then the fast unit tests there;
# 2. benchmarks/gpu_throughput.py: the recorded prompts of the default pipeline through HFModel
#    on the members' real architectures and tokenizers with random bf16 weights.
# Needs (built on the CPU machine by benchmarks/gpu_bundle.sh, git-ignored, named in the device
# call's carry):
#   .gpusite/gsite.tar.xz  spaCy + thinc + transformers 4.53.2 + tokenizers 0.21 + peft ... for
#                          cp312 (unpacked wheels, stripped .so files)
#   .gpusite/gpu.tar.xz    .gpu/prompts32.json (benchmarks/dump_prompts.py 32) and .gpu/MEMBER/
#                          (config and tokenizer files of each member, no weights)
# Results land in $OUT (default ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
tar xJf .gpusite/gsite.tar.xz -C /tmp && tar xJf .gpusite/gpu.tar.xz || exit 1
export PYTHONPATH=/tmp/gsite
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || echo "editable install failed"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -c "import torch, transformers, spacy, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'spacy', spacy.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest tests/models/test_hf_gpu.py tests/test_component_gpu.py tests/finetune/test_train_gpu.py -p no:cacheprovider -q -rs --durations=5 2>&1 | tee "$OUT/pytest-gpu.txt"
timeout 150 python3 -m pytest tests -m "not gpu and not slow and not quality" -p no:cacheprovider -q -n 8 --continue-on-collection-errors 2>&1 | tail -5 | tee "$OUT/pytest-unit.txt"
python3 benchmarks/gpu_throughput.py .gpu/prompts32.json .gpu/qwen2.5-coder-0.5b-instruct,.gpu/smollm2-135m-instruct \
  "$OUT/gpu-throughput.json" --random-init --device cuda --batch-sizes 8,32,128 \
  --score-modes packed,off,on:8,on:32,on:128 2>&1 | grep -v Warning | tee "$OUT/throughput.txt"
