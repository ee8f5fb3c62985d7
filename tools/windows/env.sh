# Sourced by the Windows scripts: Wine's settings and `win_python VERSION ARGS...`.
# WINEPREFIX lives in the checkout (.win/prefix), so nothing outside it is touched.
_win_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export WINEPREFIX=${WINEPREFIX:-$_win_root/.win/prefix}
export WINEDEBUG=${WINEDEBUG:--all}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-"mscoree,mshtml="}
export WINEARCH=win64
# Windows CPython would otherwise look for its own site-packages in the prefix.
export PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1
# The TLS test certificates setup.sh makes (tests/test_features.py reads them
# when trustme cannot be imported, as under Wine), as Windows sees the path:
# Wine maps the Linux root to drive Z:.
_win_certs=$_win_root/.win/certs
export ASYNCIO_GUEST_TEST_CERTS=${ASYNCIO_GUEST_TEST_CERTS:-Z:${_win_certs//\//\\}}

# win_python VERSION ARGS...: run the embeddable Windows CPython VERSION under Wine.
# Its stdout and stderr always go through pipes: given a regular file as a std
# stream (a CI log, `> out.txt`), Windows CPython under Wine 8 dies at start-up
# with "init_sys_streams: can't initialize sys standard streams ... Invalid handle".
win_python() {
  local v=$1; shift
  wine "$_win_root/.win/cp${v/./}/python.exe" "$@" 2> >(cat >&2) | cat
  return "${PIPESTATUS[0]}"
}
