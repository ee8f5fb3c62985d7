# Sourced by the scripts that run Debian's CPython 3.14/3.15 in their chroot
# (tools/newer/setup.sh makes it): `in_newer CMD ARGS...` runs a command
# inside, in the current directory (the checkout is mounted at the same path).
NEWER_ROOT=${ASYNCIO_GUEST_NEWER_ROOT:-/var/tmp/asyncio-guest-sid}

# Environment passed into the chroot; everything else stays outside. The
# interpreter's own settings a run may be given (asyncio debug mode, warning
# filters, dev mode...) pass as on any other Python.
_newer_pass=(CI DISPLAY PYTHONUNBUFFERED PYTHONFAULTHANDLER PYTHONASYNCIODEBUG PYTHONWARNINGS
             PYTHONDEVMODE PYTHONTRACEMALLOC PYTHONHASHSEED PIP_DISABLE_PIP_VERSION_CHECK
             PIP_NO_CACHE_DIR PIP_PROGRESS_BAR QT_QPA_PLATFORM SDL_VIDEODRIVER
             SDL_AUDIODRIVER ASYNCIO_GUEST_TEST_LOOP ASYNCIO_GUEST_REQUIRE_DISPLAY
             ASYNCIO_GUEST_SWEEP_SAMPLE ASYNCIO_GUEST_REQUIRE_HOSTS ASYNCIO_GUEST_WAIT
             ASYNCIO_GUEST_QT)

in_newer() {
  local env=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin)
  local name
  for name in "${_newer_pass[@]}"; do
    [ -n "${!name+x}" ] && env+=("$name=${!name}")
  done
  chroot "$NEWER_ROOT" /usr/bin/env -i "${env[@]}" \
      /bin/bash -c 'cd "$1" && shift && exec "$@"' in_newer "$PWD" "$@"
}

# Unmount what setup.sh mounted (deepest first); harmless if nothing is.
newer_umount() {
  local target
  for target in "$NEWER_ROOT$PWD" "$NEWER_ROOT/tmp/.X11-unix" "$NEWER_ROOT/dev" "$NEWER_ROOT/proc"; do
    if mountpoint -q "$target" 2>/dev/null; then
      umount -R "$target" 2>/dev/null || umount -l "$target"
    fi
  done
}
