#!/usr/bin/env bash
# Re-resolves packaging/requirements.lock: every package (and version) that `install.sh`
# installs, for Linux x86_64 (glibc 2.34+, e.g. Debian 12) and Python 3.11, from the ranges in
# pyproject.toml plus the `dev` extra. Run it after changing dependencies, then run the tests
# (`bash .ci/run` in a fresh clone) before committing the new lock: the lock is what CI tested.
#
#   bash packaging/update_lock.sh            # keep locked versions where still allowed
#   bash packaging/update_lock.sh --upgrade  # move everything to the newest allowed version
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-}
if [ -z "$uv" ]; then
  tools=${TMPDIR:-/tmp}/stemwright-lock-tools
  [ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q uv; }
  uv="$tools/bin/uv"
fi
"$uv" pip compile pyproject.toml --extra dev --python-version 3.11 \
  --python-platform x86_64-manylinux_2_34 --annotation-style line \
  --custom-compile-command "bash packaging/update_lock.sh" \
  -o packaging/requirements.lock "$@"
