#!/usr/bin/env bash
# The project's Python environments, one per version: .venv/<version>.
#
#   bash tools/python.sh venv VERSION         create/refresh .venv/VERSION (pip install -e '.[test]')
#   bash tools/python.sh run VERSION ARGS...  run .venv/VERSION/bin/python ARGS...
#
# 3.10-3.13 come from pyenv (newest 3.X.* installed), else python3.X on PATH.
# 3.14 and 3.15 are Debian's builds, run inside the chroot that
# tools/newer/setup.sh makes (it is made on first use, as root).
# A venv is refreshed only when pyproject.toml is newer than its stamp.
# VERSION may carry a name: `venv pygame-ce-3.12` makes .venv/pygame-ce-3.12
# on Python 3.12 (a toolkit that must have a venv of its own: make test-pygame).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: tools/python.sh venv|run VERSION [ARGS...]}
version=${2:?usage: tools/python.sh venv|run VERSION [ARGS...]}
shift 2
venv=.venv/$version
version=${version##*-}  # the Python version of a named venv (pygame-ce-3.12 -> 3.12)

in_chroot() { [[ "$version" == 3.14 || "$version" == 3.15 ]]; }

run_in_place() {  # run_in_place CMD ARGS...: in the chroot for 3.14/3.15
  if in_chroot; then
    source tools/newer/env.sh
    in_newer "$@"
  else
    "$@"
  fi
}

base_python() {
  if in_chroot; then
    echo "/usr/bin/python$version"
    return
  fi
  local root found
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  found=$(ls -1d "$root"/versions/"$version".*/bin/python 2>/dev/null |
          grep -E "/versions/${version//./\\.}\.[0-9]+/" | sort -V | tail -n 1 || true)
  [ -n "$found" ] || found=$(command -v "python$version" 2>/dev/null || true)
  if [ -z "$found" ]; then
    echo "error: no Python $version found (pyenv or python$version on PATH)" >&2
    exit 1
  fi
  echo "$found"
}

# pip here may print harmless "Location ... is ignored" warnings (extra local indexes).
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

make_venv() {
  if in_chroot; then
    # Idempotent and quick once made: it checks the chroot is complete (not
    # merely that an interpreter was unpacked) and the checkout is mounted.
    bash tools/newer/setup.sh
  fi
  if [ -f "$venv/.installed" ] && [ "$venv/.installed" -nt pyproject.toml ]; then
    return
  fi
  local py
  py=$(base_python)
  # Looked at where it runs: for 3.14/3.15 its symlink points into the chroot.
  if ! run_in_place test -x "$venv/bin/python"; then
    echo ">>> creating $venv with $py"
    # An absolute path: venv resolves a relative one through getcwd().
    if ! run_in_place "$py" -m venv "$PWD/$venv"; then
      echo "error: $py -m venv $PWD/$venv failed" >&2
      exit 1
    fi
  fi
  echo ">>> $venv: pip install -e '.[test]'"
  run_in_place "$venv/bin/python" -m pip install -q --upgrade pip 2>&1 | quiet_pip
  run_in_place "$venv/bin/python" -m pip install -q -e '.[test]' 2>&1 | quiet_pip
  run_in_place "$venv/bin/python" -c 'import asyncio_guest, pytest' || exit 1
  touch "$venv/.installed"
}

case $cmd in
  venv)
    # One maker per venv at a time: `make test`'s two lanes may both ask for it.
    mkdir -p .venv
    exec 9>".venv/.lock-${venv#.venv/}"
    flock 9
    make_venv ;;
  run)
    if in_chroot; then
      source tools/newer/env.sh
      mountpoint -q "$NEWER_ROOT$PWD" || bash tools/newer/setup.sh >&2
    fi
    run_in_place "$venv/bin/python" "$@" ;;
  *) echo "usage: tools/python.sh venv|run VERSION [ARGS...]" >&2; exit 2 ;;
esac
