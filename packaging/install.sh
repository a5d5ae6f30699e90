#!/usr/bin/env bash
# Installs Stemwright into ./.venv: system libraries (PortAudio, the ones Qt needs, the synth's
# FluidSynth/espeak-ng/soundfonts) via apt-get when it is available, then the Python package
# with every dependency at the version CI tested (packaging/requirements.lock).
#
#   bash packaging/install.sh             # the app and the `stemwright` command
#   bash packaging/install.sh --dev       # editable install, the test tools and the synth's
#                                         # optional recorded drum kits (about 250 MB)
#   bash packaging/install.sh --unlocked  # newest versions pyproject.toml allows (untested)
#
# The lock is for Linux x86_64 and Python 3.11; elsewhere the ranges in pyproject.toml are
# used (torch and torchaudio stay an exact pair). `bash packaging/update_lock.sh` renews it.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
locked=1
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --unlocked) locked=0 ;;
    *) echo "usage: bash packaging/install.sh [--dev] [--unlocked]" >&2; exit 2 ;;
  esac
done

system_packages=(libportaudio2 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
                 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
                 fluidsynth espeak-ng fluid-soundfont-gm timgm6mb-soundfont
                 musescore-general-soundfont-small)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    echo "Installing system packages: ${missing[*]}"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
      || echo "warning: could not install ${missing[*]}; audio playback may be unavailable" >&2
  else
    echo "note: apt-get not found; install PortAudio (e.g. libportaudio2 / portaudio) with" \
         "your system's package manager for audio playback" >&2
  fi
elif ! command -v dpkg-query >/dev/null 2>&1; then
  echo "note: not a Debian-like system; make sure PortAudio is installed for playback" >&2
fi
# `stemwright synth` plays drum parts on recorded kits when these are installed (GM kits
# otherwise): only for developers who make training songs, and never blocking the rest.
optional_packages=(hydrogen-drumkits hydrogen-data avldrums.lv2-soundfont)
if [ "$dev" = 1 ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  absent=()
  for p in "${optional_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || absent+=("$p")
  done
  if [ ${#absent[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    echo "Installing the synth's recorded drum kits: ${absent[*]}"
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${absent[@]}" >/dev/null; } \
      || echo "note: optional recorded drum kits not installed; synth uses GM kits" >&2
  fi
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip

constraints=()
if [ "$locked" = 1 ]; then
  if .venv/bin/python -c 'import platform, sys
sys.exit(not (sys.platform == "linux" and platform.machine() == "x86_64"
              and sys.version_info[:2] == (3, 11)))'; then
    constraints=(-c packaging/requirements.lock)
  else
    echo "note: packaging/requirements.lock is for Linux x86_64 with Python 3.11; using the" \
         "version ranges of pyproject.toml here" >&2
  fi
fi
if [ "$dev" = 1 ]; then
  # Editable, so the tests and the tree you edit are the same code. setuptools warns about
  # every editable install of a package_dir mapping; that warning is all it would print.
  PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/python -m pip install -q "${constraints[@]}" -e ".[dev]"
else
  .venv/bin/python -m pip install -q "${constraints[@]}" .
fi
.venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check >&2; exit 1; }
echo "Stemwright installed in $(pwd)/.venv ($([ ${#constraints[@]} -gt 0 ] && echo "locked versions" || echo "unlocked"))"
