#!/bin/sh
# OpenGL for `python -m physsim.bench`'s reference pipeline (mujoco.Renderer through EGL or OSMesa).
# Installs Debian's Mesa packages where they are missing and apt-get can be used; otherwise says
# what to install and carries on: the bench then falls back to physsim's own renderer and says so.
# physsim itself (training, tests) never needs OpenGL. PHYSSIM_NO_APT=1 make install skips apt-get altogether.
set -u
PACKAGES="libegl1 libgl1-mesa-dri libosmesa6"
have() { ldconfig -p 2>/dev/null | grep -q "$1"; }
if have libEGL.so.1 && have libOSMesa.so; then
  exit 0
fi
if [ -n "${PHYSSIM_NO_APT:-}" ]; then
  echo "physsim: PHYSSIM_NO_APT is set, so $PACKAGES (OpenGL for the bench's reference pipeline) are not installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "physsim: no EGL/OSMesa and no apt-get; install Mesa's EGL or OSMesa for the bench's reference pipeline"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "physsim: EGL/OSMesa missing; as root run: apt-get install -y $PACKAGES (the bench falls back without them)"
    exit 0
  fi
fi
echo "physsim: installing $PACKAGES for the bench's reference pipeline"
$SUDO apt-get install -y --no-install-recommends $PACKAGES >/dev/null 2>&1 \
  || { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends $PACKAGES >/dev/null 2>&1; } \
  || echo "physsim: apt-get could not install $PACKAGES; the bench's reference pipeline will fall back"
exit 0
