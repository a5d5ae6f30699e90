#!/usr/bin/env bash
# Installs Stemwright into ./.venv: system libraries (PortAudio, the ones Qt needs) via
# apt-get when it is available, then the Python package. `--dev` adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"

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

python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extra}"
echo "Stemwright installed in $(pwd)/.venv"
