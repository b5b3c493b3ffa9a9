#!/usr/bin/env bash
# Fills a folder (default .whl, git-ignored) with the wheels scripts/gpu_check.sh installs on a GPU machine that
# cannot reach a package registry and has jax but nothing else of physsim's: MuJoCo and MJX (without
# mujoco-studio, the viewer, 12.5 MB that `import mujoco` and MJX do not need), flax 0.12.12 (the first flax that
# imports under jax 0.11), optax, orbax-checkpoint and what they import, einops, rich, tqdm, for Python 3.12 on
# x86-64, at the versions benchmarks/jax011/requirements-py3.12.txt pins (the set the test suite passed with under
# jax 0.11.2). matplotlib is left out (the PNG is drawn later from the JSON), and so is warp-lang (larger than the
# 64 MiB that travels with the tree on its own), so the GPU check's render section times the JAX ray caster only.
# gpu_check.sh installs only the wheels whose module does not import there. Refuses to leave more than 60 MiB.
#
#   scripts/gpu_wheels.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.whl}
pins=benchmarks/jax011/requirements-py3.12.txt
mkdir -p "$dir"
names="mujoco mujoco-core mujoco-mjx glfw PyOpenGL trimesh flax optax orbax-checkpoint tensorstore etils msgpack
  protobuf humanize aiofiles simplejson psutil uvloop prometheus_client PyYAML treescope typing_extensions absl-py
  importlib_resources zipp fsspec einops rich markdown-it-py mdurl Pygments tqdm"
for name in $names; do
  spec=$(grep -i "^$name==" "$pins") || { echo "gpu_wheels.sh: $name is not pinned in $pins" >&2; exit 2; }
  echo "gpu_wheels.sh: $spec"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$spec"
done
size=$(du -sk "$dir" | cut -f1)
echo "gpu_wheels.sh: $dir holds $(( size / 1024 )) MiB"
if [ "$size" -gt $(( 60 * 1024 )) ]; then
  echo "gpu_wheels.sh: more than 60 MiB: it would not travel with the tree (64 MiB in all)" >&2
  exit 1
fi
