# Two commands do everything on a fresh machine:
#   make book   - venv, offline assets, execute every notebook (papermill, preset $(PRESET)), build the book
#   make test   - unit tests (with gpt2-paper through the real hub loaders on a hub-shaped offline stand-in cache:
#                 pytest -m hub_standin), the notebooks on the 'ci' preset checked with nbval (as executed, before
#                 pages.clean), strict book builds, browser test
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PRESET ?= offline
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
CI_OUT := _build/ci
# This machine's pip config names local indexes that may be absent: drop that noise, keep real errors.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true
# The same filter that keeps the command's own exit status (pipefail): a failed fetch still stops the build.
PIP_FILTER := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: book test venv assets chromium notebooks html clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-lock.txt requirements-absorption.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q -r requirements.txt -c requirements-lock.txt 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements-absorption.txt 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	$(PY) -c "import torch, sae_lens, transformer_lens, papermill, nbval, sklearn, sae_bench.evals.absorption.k_sparse_probing" 2>/dev/null
	touch $@

assets: venv
	$(PY) -m metasae_utils fetch 2>&1 | $(PIP_FILTER)

notebooks: assets
	$(PY) -m metasae_utils build --preset $(PRESET) $(if $(FORCE),--force,)

html:
	$(PY) -c "from metasae_utils import runner; runner.stage()"
	$(JB) build . --all -W -n --keep-going

book: notebooks html

# Another apt/dpkg process may hold the lock (unattended upgrades, a second build): wait for it, up to 10 minutes.
APT := apt-get -o DPkg::Lock::Timeout=600
chromium:
	command -v chromium >/dev/null || { echo "installing Chromium (waiting up to 10 min if another apt process holds the dpkg lock)"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium >/dev/null; }

test: assets chromium
	$(PY) -m metasae_utils build --preset ci --out $(CI_OUT)
	$(JB) build $(CI_OUT) --all -W -n --keep-going
	$(PY) -c "from metasae_utils import runner; runner.stage()"
	$(JB) build . --all -W -n --keep-going
	BOOK_HTML=$(CI_OUT)/_build/html:_build/html $(PY) -m pytest tests $(CI_OUT)/_build/executed/*.ipynb --nbval-lax -q -p no:cacheprovider --durations=25

clean:
	rm -rf _build
