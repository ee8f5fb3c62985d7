# asyncio-guest: build / test plumbing.
#
#   make demo          run examples/reference_demo.py in .venv/3.11
#   make test          test-linux, then test-windows (both run; fails if either failed)
#   make test-linux    pytest on every Python in PYTHONS (all run; fails at the end if any failed);
#                      3.14/3.15 are Debian's, in a chroot (tools/newer/setup.sh, as root)
#   make test-windows  Windows CPython WIN_PYTHONS under Wine: proactor + selector suites, win32 demo
#   make conformance   tools/conformance.py on every Python in PYTHONS (same)
#   make conformance-windows  tools/conformance.py on Windows CPython WIN_PYTHONS under Wine
#                      (proactor and selector guest loops)
#   make lint          ruff, mypy --strict (Linux and win32), yamllint + schema of .github (3.11 venv)
#   make bench         bench/run.py (3.11 venv)
#   make bench-load    bench/run.py --load: sockets, timers, call_soon_threadsafe at scale (3.11 venv)
#   make venv-3.12     create/refresh .venv/3.12 with `pip install -e '.[test]'`
#   make clean         remove .venv

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PYTHONS ?= 3.10 3.11 3.12 3.13 3.14 3.15
WIN_PYTHONS ?= 3.10 3.11 3.12 3.13
LINT_PY ?= 3.11
LINT_PATHS := $(wildcard src tests bench tools examples)


# Each version's venv and interpreter go through tools/python.sh: pyenv's
# 3.10-3.13 directly, Debian's 3.14/3.15 inside their chroot (tools/newer/).
PY := bash tools/python.sh

.PHONY: demo test test-linux test-windows conformance conformance-windows lint bench bench-load clean

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

# The README's test command: the Linux suites, then the Windows suites under
# Wine. Both always run; the target fails if either did.
test:
	@rc=0; \
	$(MAKE) --no-print-directory test-linux || rc=1; \
	$(MAKE) --no-print-directory test-windows || rc=1; \
	exit $$rc

test-linux:
	$(call each_python,test,$(PY) run $$v -m pytest -q -p no:cacheprovider tests)

# Windows CPython (embeddable, from PyPI) under Debian's Wine: see
# tools/windows/ and ../shared/windows-under-wine.md. Installs Wine and Xvfb
# with apt if they are missing (as root).
test-windows: venv-$(LINT_PY)
	HOST_PYTHON=.venv/$(LINT_PY)/bin/python bash tools/windows/setup.sh $(WIN_PYTHONS)
	bash tools/windows/test.sh $(WIN_PYTHONS)

conformance:
	$(call each_python,conformance,$(PY) run $$v tools/conformance.py)

# The same gate on Windows CPython under Wine, where the default loop is the
# proactor (IOCP): setup.sh also copies each pyenv CPython's test_asyncio next
# to the embeddable Windows CPython of the same minor version.
conformance-windows: venv-$(LINT_PY)
	HOST_PYTHON=.venv/$(LINT_PY)/bin/python bash tools/windows/setup.sh $(WIN_PYTHONS)
	bash tools/windows/conformance.sh $(WIN_PYTHONS)

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
