# Sourced by the Windows scripts: Wine's settings and `win_python VERSION ARGS...`.
# WINEPREFIX lives in the checkout (.win/prefix), so nothing outside it is touched.
_win_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export WINEPREFIX=${WINEPREFIX:-$_win_root/.win/prefix}
export WINEDEBUG=${WINEDEBUG:--all}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-"mscoree,mshtml="}
export WINEARCH=win64
# Windows CPython would otherwise look for its own site-packages in the prefix.
export PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1

# win_python VERSION ARGS...: run the embeddable Windows CPython VERSION under Wine.
win_python() {
  local v=$1; shift
  wine "$_win_root/.win/cp${v/./}/python.exe" "$@"
}
