#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the wheels a lent GPU machine lacks for check.py: its image
# has torch 2.11, transformers, accelerate and safetensors, but not our diffusers, peft or
# bitsandbytes. Python 3.12, manylinux x86-64, as that image is. About 52 MB (a device call carries 64 MiB at most).
set -euo pipefail
cd "$(dirname "$0")/../.."
pins() { grep -E "^($1)==" trainer/requirements.txt; }
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .whl $(pins 'diffusers|peft|bitsandbytes') importlib_metadata==8.7.0
ls -la .whl
