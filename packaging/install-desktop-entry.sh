#!/usr/bin/env bash
# Adds Stemwright to the desktop menu of the current user (freedesktop.org systems).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
mkdir -p "$apps" "$icons"
cp "$root/resources/stemwright.svg" "$icons/stemwright.svg"
sed "s|^Exec=stemwright|Exec=$root/.venv/bin/stemwright|" "$root/packaging/stemwright.desktop" \
  > "$apps/stemwright.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "Installed $apps/stemwright.desktop"
