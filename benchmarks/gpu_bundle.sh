#!/usr/bin/env bash
# Build what benchmarks/gpu_check.sh needs on the lent GPU machine (Python 3.12, torch there; no
# package index; 64 MiB travels), here on the CPU machine, from the project's venv:
#   .gpusite/gsite.tar.xz  spaCy, thinc, transformers 4.53.2, tokenizers, peft, ... as unpacked cp312
#                          wheels with stripped .so files (about 18 MB)
#   .gpusite/gpu.tar.xz    .gpu/prompts32.json (the prompts of the default pipeline on 32 WNUT-17 test
#                          sentences) and .gpu/MEMBER/ (config and tokenizer files, no weights)
# Then call the device with carry [".gpusite"] and `OUT=$OUT bash benchmarks/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
version() { $PY -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
PKGS="spacy thinc blis cymem preshed murmurhash srsly wasabi catalogue confection weasel spacy-legacy spacy-loggers
      cloudpathlib smart_open pydantic pydantic_core annotated-types typing-inspection transformers tokenizers huggingface_hub peft"
rm -rf .whl /tmp/gsite && mkdir -p .whl /tmp/gsite .gpusite .gpu
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $(for p in $PKGS; do echo "$p==$(version $p)"; done)
for w in .whl/*.whl; do unzip -q -o "$w" -d /tmp/gsite; done
find /tmp/gsite -name "*.so" -exec strip --strip-unneeded {} +
rm -rf /tmp/gsite/spacy/tests /tmp/gsite/thinc/tests /tmp/gsite/blis/tests
find /tmp/gsite \( -name "*.pyx" -o -name "*.cpp" -o -name "*.c" \) -delete
tar cJf .gpusite/gsite.tar.xz -C /tmp gsite
[ -f .gpu/prompts32.json ] || $PY benchmarks/dump_prompts.py 32 .gpu/prompts32.json
for m in qwen2.5-coder-0.5b-instruct smollm2-135m-instruct; do
  mkdir -p ".gpu/$m"
  for f in "$HOME/.cache/spacy_el4ner/$m"/*; do
    case "$f" in *.safetensors|*/vocab.json|*/merges.txt) ;; *) cp "$f" ".gpu/$m/" ;; esac
  done
done
tar cJf .gpusite/gpu.tar.xz .gpu
ls -la .gpusite
