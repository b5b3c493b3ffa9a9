#!/usr/bin/env bash
# Fills a folder (default .whl, git-ignored) with the wheels scripts/gpu_check.sh installs on a GPU machine that
# cannot reach a package registry: physsim's needs that the GPU image lacks (MuJoCo, MJX and theirs; flax 0.12.12,
# the first flax that imports under jax 0.11), for Python 3.12 on x86-64, at the versions
# benchmarks/jax011/requirements-py3.12.txt pins (the set the test suite passed with under jax 0.11.2).
# About 35 MB: within the 64 MiB that travels with the tree. warp-lang is not among them (it is larger than that
# alone), so the GPU check's render section times the JAX ray caster only.
#
#   scripts/gpu_wheels.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.whl}
pins=benchmarks/jax011/requirements-py3.12.txt
mkdir -p "$dir"
for name in mujoco mujoco-core mujoco-studio mujoco-mjx flax glfw PyOpenGL trimesh websockets; do
  spec=$(grep -i "^$name==" "$pins") || { echo "gpu_wheels.sh: $name is not pinned in $pins" >&2; exit 2; }
  echo "gpu_wheels.sh: $spec"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$spec"
done
du -sh "$dir"
