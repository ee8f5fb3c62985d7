# asyncio-guest: build / test plumbing.
#
#   make demo          run examples/reference_demo.py in .venv/3.11
#   make test          everything CI checks, in two lanes side by side (2 cores):
#                      Linux (test-linux, test-qt, test-glib) and Windows under Wine
#                      (test-windows, conformance-windows), then both share pool;
#                      fails if either lane did
#   make test-linux    pytest on every Python in PYTHONS (all run; fails at the end if any failed);
#                      3.14/3.15 are Debian's, in a chroot (tools/newer/setup.sh, as root)
#   make test-qt       the Qt host on PySide6 and PyQt6 (offscreen), QT_MATRIX (Python/binding)
#   make test-glib     the GLib/GTK host (PyGObject 3.50.2, GTK under Xvfb) on GLIB_PYTHONS
#   make test-wx       the wx host (Debian's wxPython 4.2.0 on /usr/bin/python3, Xvfb)
#   make test-pygame   the pygame host on pygame-ce and pygame (SDL dummy driver), PYGAME_MATRIX
#   make bench-pygame  bench/bm_frames.py (60 fps + loopback I/O) in each PYGAME_MATRIX venv
#   make test-windows  Windows CPython WIN_PYTHONS under Wine: proactor + selector suites, win32 demo
#   make conformance   tools/conformance.py on every Python in PYTHONS (same)
#   make pool          test-wx, test-pygame and the conformance gate on 3.10-3.15 (POOL),
#                      each once between the lanes of make test
#   make conformance-windows  tools/conformance.py on Windows CPython WIN_CONF_PYTHONS under Wine
#                      (proactor and selector guest loops)
#   make lint          ruff, mypy --strict (Linux and win32), yamllint + schema of .github (3.11 venv)
#   make bench         bench/run.py (3.11 venv)
#   make bench-load    bench/run.py --load: sockets, timers, call_soon_threadsafe at scale (3.11 venv)
#   make venv-3.12     create/refresh .venv/3.12 with `pip install -e '.[test]'`
#   make clean         remove .venv

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PYTHONS ?= 3.10 3.11 3.12 3.13 3.14 3.15
# Windows under Wine: the suites on the oldest and newest Windows CPython
# (3.11 and 3.12 pass too: make test-windows WIN_PYTHONS="3.11 3.12"), the
# conformance gate on 3.13 (3.10-3.12: make conformance-windows WIN_CONF_PYTHONS=...).
WIN_PYTHONS ?= 3.10 3.13
WIN_CONF_PYTHONS ?= 3.13
LINT_PY ?= 3.11
LINT_PATHS := $(wildcard src tests bench tools examples)


# Each version's venv and interpreter go through tools/python.sh: pyenv's
# 3.10-3.13 directly, Debian's 3.14/3.15 inside their chroot (tools/newer/).
PY := bash tools/python.sh

.PHONY: demo test lane-linux lane-windows pool test-linux test-qt test-glib test-wx test-pygame bench-pygame test-windows conformance conformance-windows lint bench bench-load clean

# --- virtualenvs ------------------------------------------------------------
venv-%:
	@$(PY) venv $*

# --- run --------------------------------------------------------------------
demo: venv-3.11
	$(PY) run 3.11 examples/reference_demo.py

# $(call each_python,TITLE,COMMAND): run COMMAND (with $$v = version) for every
# Python in PYTHONS; keep going on failure, summarise, exit 1 if any failed.
define each_python
	@failed=""; \
	for v in $(PYTHONS); do \
	  echo; \
	  echo "==================== $(1): Python $$v ===================="; \
	  if ! $(MAKE) --no-print-directory venv-$$v; then \
	    echo "!!! Python $$v: venv setup failed"; failed="$$failed $$v(venv)"; continue; \
	  fi; \
	  $(PY) run $$v -VV; \
	  if $(2); then echo "--- $(1): Python $$v OK"; \
	  else rc=$$?; echo "!!! $(1): Python $$v FAILED (exit $$rc)"; failed="$$failed $$v"; fi; \
	done; \
	echo; \
	if [ -n "$$failed" ]; then echo "==================== $(1) FAILED on:$$failed"; exit 1; fi; \
	echo "==================== $(1) passed on: $(PYTHONS)"
endef

# The README's test command, and what CI runs after lint: two lanes at once,
# each line of output labelled with its lane (and each "====" heading with the
# time it began). The shared venv (the Windows lane's host Python) is made
# first; a venv two lanes ask for is made once (tools/python.sh locks it). Each
# lane starts its Xvfb servers from its own display number (XVFB_FROM):
# `xvfb-run -a` picks the first number without a lock file, and two lanes
# starting at once could pick the same one. A third lane (the toolkit hosts
# beside the suites) takes the run from 27 to 21 minutes, but its load brings
# out rare timing faults: 7 in 6 runs on 2026-12-05/06, 5 of them fixed since
# (a hang when a Ctrl+C hit the run's finalizing; two ticks in flight on 3.10;
# a daemon thread's wake pipe closed by the exit; a failed join's retry that
# hung under Wine; a Trio test's unprotected task), 2 not yet found (a leaked
# socket pair; a Tk Ctrl+C test's timing). That third lane waits until those
# are found (and then the toolkit hosts need venvs of their own: they install
# into .venv/VERSION, which a suite may be running from). Since then, in the
# two lanes: one Windows switches case (tests/fault_injection.py) hung once,
# its reference host asleep with a tick queued and _woken set by its poster,
# whose byte never ended the wait (12 runs of that family under load did not
# bring it back; the stacks that would tell where each thread stood were not
# in the digest then). And on 2026-12-07 one case of the Windows line
# interrupt sweep (tests/interrupt_sweep.py, 3.13, proactor loop) hung once:
# the reference host asleep in select(), the backend thread in its IOCP wait,
# main's shutdown far along (its echo peer and executor threads were gone),
# and the run's end never came; 30 reruns of that sweep under Wine (45 000
# cases, 12 runs beside Linux suites) did not bring it back. The sweep now
# names a hung case and the line its second Ctrl+C landed on, so the next one
# can be replayed alone. Each lane's output is also kept in
# build/test-logs/, and a failed run ends with a digest of what failed in
# the lane that failed (a CI page often shows only the tail of the log),
# with the stacks faulthandler dumped if a test hung (a hang's cause is there).
lane_label = while IFS= read -r l || [ -n "$$l" ]; do if [[ $$l == ====================* ]]; \
  then printf '%s%s (%(%H:%M:%S)T)\n' '$(1)' "$$l" -1; else printf '%s%s\n' '$(1)' "$$l"; fi; done

test: venv-$(LINT_PY)
	@mkdir -p build/test-logs; rm -rf build/pool-claims; mkdir -p build/pool-claims; \
	export POOL_CLAIMS=build/pool-claims; \
	( XVFB_FROM=99 $(MAKE) --no-print-directory lane-linux 2>&1 | $(call lane_label,[linux]   ) | tee build/test-logs/linux.log ) & linux=$$!; \
	( XVFB_FROM=150 $(MAKE) --no-print-directory lane-windows 2>&1 | $(call lane_label,[windows] ) | tee build/test-logs/windows.log ) & windows=$$!; \
	failed=""; wait $$linux || failed="$$failed linux"; wait $$windows || failed="$$failed windows"; \
	if [ -z "$$failed" ]; then echo "==================== make test: both lanes passed"; exit 0; fi; \
	echo "==================== make test: FAILED in lane(s)$$failed; what failed there:"; \
	for lane in $$failed; do \
	  grep -E '^\S+ +E +' build/test-logs/$$lane.log | head -n 6; \
	  grep -E -A 60 '^\S+ +E +Timeout \(' build/test-logs/$$lane.log | grep -E '^\S+ +E +' | head -n 60; \
	  grep -E ':[0-9]+: [A-Za-z_.]*(Error|Exception|Interrupt|Exit|Expired|Failed)$$' build/test-logs/$$lane.log | head -n 6; \
	  grep -E '!!!|FAILED|[Ee]rror[: ]' build/test-logs/$$lane.log | grep -Ev 'SKIPPED|^\S+ +E +' | head -n 10; \
	done; \
	exit 1

# $(call sequence,TARGETS): make each target in turn, all of them even after a
# failure; fail at the end if any failed.
define sequence
	@rc=0; for t in $(1); do $(MAKE) --no-print-directory $$t || rc=1; done; exit $$rc
endef

# Each lane first does its own work (Linux: the suites, the Qt and GLib
# hosts; Windows: the suites and the gate under Wine), then both share the
# pool: the wx and pygame hosts (venvs of their own, so they may run beside
# any suite) and the Linux conformance gate per Python. A lane that is free
# claims the next item nobody claimed yet (mkdir is atomic), the toolkits
# first and then the slowest gates, so the lanes end close together however
# this shared machine's speed varies between their parts. (Qt and GLib
# install into .venv/VERSION, which a suite may be running from: they stay in
# the Linux lane, after its suites.)
POOL := test-wx test-pygame 3.15 3.14 3.12 3.13 3.11 3.10

lane-linux:
	$(call sequence,test-linux test-qt test-glib pool)

lane-windows:
	$(call sequence,test-windows conformance-windows pool)

# Each item of POOL that no lane has claimed in the directory POOL_CLAIMS
# (which `make test` makes afresh for its two lanes; without POOL_CLAIMS,
# every item): a make target, or a Python to run the conformance gate on.
pool:
	@rc=0; \
	for item in $(POOL); do \
	  if [ -n "$$POOL_CLAIMS" ]; then mkdir "$$POOL_CLAIMS/$$item" 2>/dev/null || continue; fi; \
	  case $$item in \
	    test-*) $(MAKE) --no-print-directory $$item || rc=1;; \
	    *) $(MAKE) --no-print-directory conformance PYTHONS=$$item || rc=1;; \
	  esac; \
	done; \
	exit $$rc

# The line-by-line sweeps (tests/sampling.py) run whole on 3.13 and 3.15; on
# 3.10-3.12 each takes an interleaved third (together, every case once more),
# on 3.14 every other case.
sweep_sample = case $$v in 3.10) echo 3/0;; 3.11) echo 3/1;; 3.12) echo 3/2;; 3.14) echo 2/0;; esac

# The toolkits the suite must find (a missing one fails instead of skipping),
# and one X server (Xvfb, no access control, so the 3.14/3.15 chroot can use
# it too) for every Python's run.
REQUIRE_HOSTS ?= tk,trio
# The wait strategy of guest runs that do not choose one (ASYNCIO_GUEST_WAIT):
# auto (zero-thread on Linux: the host watches the loop's epoll fd) on every
# Python but one, which runs the suite (3.12) and the conformance gate (3.13)
# with the backend thread instead; the Windows lane's runs use the thread
# throughout (IOCP and select() loops have no pollable fd). The host scenarios
# (tests/scenarios) and the tests that need one strategy set it themselves.
wait_for_tests = case $$v in 3.12) echo thread;; *) echo auto;; esac
wait_for_gate = case $$v in 3.13) echo thread;; *) echo auto;; esac
XVFB := xvfb-run -n $${XVFB_FROM:-99} -a -s "-screen 0 1280x1024x24 -ac"

test-linux:
	$(call each_python,test,ASYNCIO_GUEST_WAIT=$$($(wait_for_tests)) ASYNCIO_GUEST_REQUIRE_HOSTS=$(REQUIRE_HOSTS) ASYNCIO_GUEST_SWEEP_SAMPLE=$$($(sweep_sample)) $(XVFB) $(PY) run $$v -m pytest -q -p no:cacheprovider tests)

# The Qt host on real Qt (offscreen platform), each binding in its own process
# (one binding per process, each in the venv of its Python). Every Python
# 3.10-3.15 runs the Qt suite with one binding, 3.13 with both: PySide6
# 6.11.3 installs on 3.10-3.14 (its wheels say Requires-Python <3.15; 6.12.0
# aborts on 3.11, none_dealloc), PyQt6 6.11 on 3.10-3.15. 3.14/3.15 run in the
# Debian chroot, whose Qt system libraries tools/newer/setup.sh installs.
# -k qt: the Qt module's tests and the scenarios' Qt harnesses (the other
# hosts' scenarios run in test-linux).
# Qt 5 too, where its wheels install: PySide2 5.15 on 3.10 (its last), PyQt5 5.15.
# Every binding's wheels run Qt's loop on GLib here, so the host watches fds
# with GLib sources of its own (src/asyncio_guest/_qt_glib_fds.py); an entry
# ending in +noglib runs with QT_NO_GLIB=1, Qt's own loop, where the host's
# watches are QSocketNotifiers (as on Windows and macOS).
QT_MATRIX ?= 3.10/pyside6 3.10/pyside2+noglib 3.11/pyqt6 3.12/pyside6 3.12/pyqt5 \
             3.13/pyside6 3.13/pyqt6+noglib 3.14/pyside6 3.15/pyqt6
QT_PACKAGE_pyside6 := "PySide6-Essentials==6.11.3"
QT_PACKAGE_pyqt6 := "PyQt6==6.11.*"
QT_PACKAGE_pyside2 := "PySide2==5.15.*"
QT_PACKAGE_pyqt5 := "PyQt5==5.15.*"

test-qt:
	@failed=""; \
	for vb in $(QT_MATRIX); do \
	  v=$${vb%/*}; b=$${vb#*/}; noglib=; \
	  case $$b in *+noglib) b=$${b%+noglib}; noglib=1;; esac; \
	  case $$b in pyside6) pkg=$(QT_PACKAGE_pyside6);; pyqt6) pkg=$(QT_PACKAGE_pyqt6);; \
	    pyside2) pkg=$(QT_PACKAGE_pyside2);; pyqt5) pkg=$(QT_PACKAGE_pyqt5);; esac; \
	  echo; echo "==================== Qt host ($$b$${noglib:+, QT_NO_GLIB=1}): Python $$v ===================="; \
	  $(MAKE) --no-print-directory venv-$$v || { failed="$$failed $$vb(venv)"; continue; }; \
	  $(PY) run $$v -m pip install -q "$$pkg" 2>&1 | grep -v "is ignored" || true; \
	  QT_QPA_PLATFORM=offscreen ASYNCIO_GUEST_QT=$$b ASYNCIO_GUEST_REQUIRE_HOSTS=qt \
	    env $${noglib:+QT_NO_GLIB=1} $(PY) run $$v -m pytest -q -p no:cacheprovider -k qt tests/test_qt_host.py tests/scenarios tests/test_readme_hellos.py \
	    || failed="$$failed $$vb"; \
	  QT_QPA_PLATFORM=offscreen ASYNCIO_GUEST_QT=$$b env $${noglib:+QT_NO_GLIB=1} \
	    $(PY) run $$v examples/qt_app.py --smoke \
	    || failed="$$failed $$vb-example"; \
	done; \
	if [ -n "$$failed" ]; then echo "==================== test-qt FAILED on:$$failed"; exit 1; fi; \
	echo "==================== test-qt passed on: $(QT_MATRIX)"

# GLib and GTK (PyGObject 3.50.2, the newest that builds against this Debian's
# GLib 2.74: built from source into the venv; GTK under Xvfb): the GLib host's
# own tests and the scenario set's glib and gtk3 harnesses, then (GTK 4 cannot
# share a process with GTK 3) the set's gtk4 harness, on GLIB_PYTHONS.
GLIB_PYTHONS ?= 3.11 3.13

test-glib:
	@failed=""; \
	for v in $(GLIB_PYTHONS); do \
	  echo; echo "==================== GLib/GTK host: Python $$v ===================="; \
	  $(MAKE) --no-print-directory venv-$$v || { failed="$$failed $$v(venv)"; continue; }; \
	  $(PY) run $$v -m pip install -q "PyGObject==3.50.2" 2>&1 | grep -v "is ignored" || true; \
	  ASYNCIO_GUEST_REQUIRE_HOSTS=glib,gtk3 $(XVFB) $(PY) run $$v -m pytest -q -p no:cacheprovider \
	    -k "glib or gtk or required" tests/test_glib_host.py tests/scenarios tests/test_readme_hellos.py || failed="$$failed $$v"; \
	  ASYNCIO_GUEST_GTK=4 ASYNCIO_GUEST_REQUIRE_HOSTS=gtk4 $(XVFB) $(PY) run $$v -m pytest -q \
	    -p no:cacheprovider -k "gtk4 or required" tests/scenarios || failed="$$failed $$v(gtk4)"; \
	done; \
	if [ -n "$$failed" ]; then echo "==================== test-glib FAILED on:$$failed"; exit 1; fi; \
	echo "==================== test-glib passed on: $(GLIB_PYTHONS)"

# wxPython: PyPI has no Linux wheels; Debian's python3-wxgtk4.0 (4.2.0, GTK 3) is
# built for the system CPython 3.11 only, so the venv is that interpreter's with
# the system site-packages (.venv/wx, remade when pyproject.toml changes): the
# wx module's own tests, the scenario set's wx harness under both waits (the
# zero-thread one through Debian's PyGObject, python3-gi) and the example, under Xvfb.
WX_VENV := .venv/wx

$(WX_VENV)/.installed: pyproject.toml
	@test -x /usr/bin/python3 && /usr/bin/python3 -c 'import wx' || \
	  { echo "error: no wx for /usr/bin/python3: apt-get install python3-wxgtk4.0"; exit 1; }
	test -x $(WX_VENV)/bin/python || /usr/bin/python3 -m venv --system-site-packages $(WX_VENV)
	$(WX_VENV)/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v "is ignored" || true
	$(WX_VENV)/bin/python -c 'import asyncio_guest, pytest, wx'
	touch $@

test-wx: $(WX_VENV)/.installed
	@echo; echo "==================== wx host: $$($(WX_VENV)/bin/python -c 'import sys, wx; print(wx.version(), "on Python", sys.version.split()[0])') ===================="
	ASYNCIO_GUEST_REQUIRE_HOSTS="wx,wx[fd]" $(XVFB) $(WX_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  -k "wx or required" tests/test_wx_host.py tests/scenarios tests/test_examples.py \
	  tests/test_readme_hellos.py

# pygame-ce and pygame both install the `pygame` import package, so each gets
# a venv of its own (.venv/pygame-ce-3.12...: tools/python.sh makes named
# venvs). The pygame host's own tests, the scenario set's pygame harness and
# the example, headless (SDL dummy video and audio drivers). Wheels: pygame-ce
# 2.5.8 for 3.10-3.14, pygame 2.6.1 for 3.10-3.13 (none for 3.14/3.15).
PYGAME_MATRIX ?= 3.13/pygame-ce 3.14/pygame-ce 3.11/pygame
PYGAME_PACKAGE_pygame-ce := "pygame-ce==2.5.*"
PYGAME_PACKAGE_pygame := "pygame==2.6.*"
PYGAME_ENV := SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1

# pygame_venv: make the named venv of $$vp (VERSION/PACKAGE), install the package.
define pygame_venv
v=$${vp%/*}; p=$${vp#*/}; venv=$$p-$$v; \
case $$p in pygame-ce) pkg=$(PYGAME_PACKAGE_pygame-ce);; pygame) pkg=$(PYGAME_PACKAGE_pygame);; esac; \
$(PY) venv $$venv && { $(PY) run $$venv -m pip install -q "$$pkg" 2>&1 | grep -v "is ignored" || true; }
endef

test-pygame:
	@failed=""; \
	for vp in $(PYGAME_MATRIX); do \
	  echo; echo "==================== pygame host ($${vp#*/}): Python $${vp%/*} ===================="; \
	  $(pygame_venv) || { failed="$$failed $$vp(venv)"; continue; }; \
	  $(PYGAME_ENV) ASYNCIO_GUEST_REQUIRE_HOSTS=pygame $(PY) run $$venv -m pytest -q -p no:cacheprovider \
	    -k "pygame or required_hosts" tests/test_pygame_host.py tests/scenarios tests/test_examples.py \
	    tests/test_readme_hellos.py \
	    || failed="$$failed $$vp"; \
	done; \
	if [ -n "$$failed" ]; then echo "==================== test-pygame FAILED on:$$failed"; exit 1; fi; \
	echo "==================== test-pygame passed on: $(PYGAME_MATRIX)"

bench-pygame:
	@for vp in $(PYGAME_MATRIX); do \
	  $(pygame_venv) || exit 1; \
	  $(PYGAME_ENV) $(PY) run $$venv bench/bm_frames.py $(BENCH_ARGS) || exit 1; \
	done

# Windows CPython (embeddable, from PyPI) under Debian's Wine: see
# tools/windows/ and ../shared/windows-under-wine.md. Installs Wine and Xvfb
# with apt if they are missing (as root).
test-windows: venv-$(LINT_PY)
	HOST_PYTHON=.venv/$(LINT_PY)/bin/python bash tools/windows/setup.sh $(WIN_PYTHONS)
	bash tools/windows/test.sh $(WIN_PYTHONS)

conformance:
	$(call each_python,conformance,$(PY) run $$v tools/conformance.py --wait $$($(wait_for_gate)))

# The same gate on Windows CPython under Wine, where the default loop is the
# proactor (IOCP): setup.sh also copies each pyenv CPython's test_asyncio next
# to the embeddable Windows CPython of the same minor version.
conformance-windows: venv-$(LINT_PY)
	HOST_PYTHON=.venv/$(LINT_PY)/bin/python bash tools/windows/setup.sh $(WIN_CONF_PYTHONS)
	bash tools/windows/conformance.sh $(WIN_CONF_PYTHONS)

lint: venv-$(LINT_PY)
	.venv/$(LINT_PY)/bin/ruff check $(LINT_PATHS)
	.venv/$(LINT_PY)/bin/mypy --strict src
	.venv/$(LINT_PY)/bin/mypy --strict --platform win32 src
	.venv/$(LINT_PY)/bin/mypy --strict tests/typing
	.venv/$(LINT_PY)/bin/yamllint -s -d '{extends: default, rules: {line-length: {max: 100}, truthy: {check-keys: false}, document-start: disable}}' .github
	.venv/$(LINT_PY)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

bench: venv-3.11
	.venv/3.11/bin/python bench/run.py

bench-load: venv-3.11
	.venv/3.11/bin/python bench/run.py --load

clean:
	rm -rf .venv
