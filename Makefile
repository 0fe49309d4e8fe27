# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run once test lint clean

$(BIN)/monitor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $@

run: $(BIN)/monitor  ## run the daemon on config/monitor.yaml (SQLite in data/)
	$(BIN)/monitor run

once: $(BIN)/monitor  ## poll every source once, deliver, exit
	$(BIN)/monitor run --once

test: $(BIN)/monitor  ## the whole test suite
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
