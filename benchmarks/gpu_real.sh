#!/usr/bin/env bash
# The whole pipeline with real weights (SmolLM2-135M-Instruct) on the lent GPU and on that machine's
# CPU (benchmarks/gpu_real.py). The GGUF travels in four parts (64 MiB per call with the working
# tree, about 30 MB). Here (folders git-ignored through .git/info/exclude):
#   pip download --no-deps gguf==0.19.0 -d .gpr1; cp ../shared/data/wnut17/test.conll .gpr1/
#   tar cf .gpr1/store.tar stores/wnut17-train500; split -b 31000000 -d -a 1 SmolLM2-135M-Instruct.Q4_1.gguf /tmp/p.
#   mv /tmp/p.3 .gpr1/p3; mv /tmp/p.0 .gpr2/p0; mv /tmp/p.1 .gpr3/p1; mv /tmp/p.2 .gpr4/p2
# Device calls, one right after the other (the machine goes back after 30 s idle):
#   carry [.gpusite, .gpr1]: mkdir -p /tmp/g && cp .gpr1/* /tmp/g/ && tar xJf .gpusite/gsite.tar.xz -C /tmp
#   carry [.gpr2]: cp .gpr2/p0 /tmp/g/      carry [.gpr3]: cp .gpr3/p1 /tmp/g/
#   carry [.gpr4]: cp .gpr4/p2 /tmp/g/ && OUT=$OUT bash benchmarks/gpu_real.sh   (converts, sha256 checked)
#   then, still warm: OUT=$OUT N=1287 ONLY="cuda:64 cpu:16" bash benchmarks/gpu_real.sh
set -uo pipefail
OUT=${OUT:-gpu-out}
G=/tmp/g
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false SPACY_EL4NER_HOME=/tmp/el4
[ -d /tmp/gsite ] || tar xJf .gpusite/gsite.tar.xz -C /tmp || exit 1
export PYTHONPATH=/tmp/gsite
python3 -m pip install -q --no-deps --no-index --target /tmp/gsite $G/gguf-*.whl >/dev/null 2>&1 || echo "gguf install failed"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || echo "editable install failed"
tar xf $G/store.tar
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
N=${N:-128}
if [ -n "${ONLY:-}" ]; then  # a second call on the same warm machine: the model is converted already
  for spec in $ONLY; do dev=${spec%%:*} bs=${spec##*:}
    python3 benchmarks/gpu_real.py $G/test.conll $N "$OUT/gpu-real-$dev-b$bs-n$N.json" --device $dev --batch-size $bs 2>&1 | grep -v Warning | tail -3
  done; exit 0
fi
python3 benchmarks/gpu_real.py $G/test.conll $N "$OUT/gpu-real-cuda-b16.json" --device cuda --batch-size 16 \
  --convert $G/p0 $G/p1 $G/p2 $G/p3 2>&1 | grep -v Warning | tail -25
python3 benchmarks/gpu_real.py $G/test.conll $N "$OUT/gpu-real-cuda-b64.json" --device cuda --batch-size 64 2>&1 | grep -v Warning | tail -12
python3 benchmarks/gpu_real.py $G/test.conll $N "$OUT/gpu-real-cpu16.json" --device cpu --batch-size 16 2>&1 | grep -v Warning | tail -12
