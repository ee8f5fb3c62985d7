#!/usr/bin/env bash
# Prepare Debian's CPython 3.14 and 3.15 (from Debian unstable) in a small chroot.
#
#   bash tools/newer/setup.sh
#
# pyenv here has CPython up to 3.13; Debian unstable ships 3.14 and 3.15 with
# their test suites, but they need unstable's glibc, so they run inside a
# minimal unstable chroot (see ../shared/newer-pythons.md). Needs root (as CI
# runs). Idempotent: an existing chroot is reused and only missing mounts are
# made. Every download comes from Debian's mirror; pip inside reaches PyPI
# through the host's resolver, CA bundle and pip configuration, copied in.
#
# Mounts: /proc, /dev (recursively: /dev/pts and /dev/shm too), /tmp/.X11-unix
# (the host's X displays, for GUI tests under the host's Xvfb) and the checkout
# itself, at the same path, so paths and editable installs mean the same
# inside and out. tools/newer/umount.sh undoes them.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/newer/env.sh
root=$NEWER_ROOT

if [ "$(id -u)" -ne 0 ]; then
  echo "error: tools/newer/setup.sh needs root (debootstrap, chroot, mount)" >&2
  exit 1
fi

# One set-up at a time (both lanes of `make test` may get here).
exec 8>"$root.lock"
flock 8

packages=python3.14,python3.15,python3.14-venv,python3.15-venv
packages+=,libpython3.14-testsuite,libpython3.15-testsuite,python3-tk,ca-certificates

if [ ! -x "$root/usr/bin/python3.15" ] || [ ! -f "$root/.ready" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo ">>> installing debootstrap (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -q >/dev/null &&
        apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
  fi
  newer_umount
  if grep -q " $root[/ ]" /proc/mounts; then
    # Never delete through a mount: the checkout itself is mounted in there.
    echo "error: something is still mounted under $root; run tools/newer/umount.sh" >&2
    exit 1
  fi
  rm -rf "$root"
  mkdir -p "$root"
  echo ">>> debootstrap Debian unstable with Python 3.14 and 3.15 -> $root"
  log=$(mktemp)
  if ! debootstrap --variant=minbase --include="$packages" sid "$root" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  touch "$root/.ready"
fi

# What pip needs inside: the resolver, the machine's CA bundle (the index may
# be reached through a proxy whose CA only the host's bundle has), pip's config.
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"

mount_once() {  # mount_once TARGET MOUNT-ARGS...
  local target=$1; shift
  mkdir -p "$target"
  mountpoint -q "$target" || mount "$@" "$target"
}
mount_once "$root/proc" -t proc proc
mount_once "$root/dev" --rbind /dev
mount --make-rslave "$root/dev"
mkdir -p /tmp/.X11-unix
mount_once "$root/tmp/.X11-unix" --bind /tmp/.X11-unix
mount_once "$root$PWD" --bind "$PWD"

# The system libraries Qt's wheels (PySide6, PyQt6) load for the offscreen
# platform (make test-qt on 3.14/3.15), once. Virtual names where Debian
# renames packages (the t64 transition): apt picks their one provider.
if [ ! -f "$root/.qt-libs" ]; then
  echo ">>> installing Qt's runtime libraries in the chroot"
  log=$(mktemp)
  qt_libs=(libgl1 libegl1 libxkbcommon0 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0
           libx11-6 libx11-xcb1 libxcb1)
  apt_get() { in_newer env DEBIAN_FRONTEND=noninteractive apt-get -q "$@"; }
  if ! { apt_get install -y --no-install-recommends "${qt_libs[@]}" ||
         { apt_get update && apt_get install -y --no-install-recommends "${qt_libs[@]}"; }
       } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  touch "$root/.qt-libs"
fi

# The checkout must be the same directory inside as out: every venv, editable
# install and test there works relative to it. Checked, not assumed: a failure
# here says what is mounted, rather than surfacing later as a bare getcwd error.
check='import os, sys; print("   ", sys.version.split()[0], "in", os.getcwd())'
for v in 3.14 3.15; do
  if ! in_newer "python$v" -c "$check"; then
    echo "error: Python $v cannot use the checkout $PWD inside $root; mounts there:" >&2
    grep " $root" /proc/mounts >&2 || true
    ls -ld "$PWD" "$root$PWD" >&2 || true
    exit 1
  fi
done
