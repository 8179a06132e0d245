# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.poppk-installed
OUT    ?= out

.PHONY: demo test test-fast install clean notebooks

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/poppk demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra --durations=25

# Executed notebooks with their figures (notebooks/executed/*.ipynb); after `make demo`
# they load the demo's fits from $(OUT)/fits instead of refitting.
notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py --fit-store $(OUT)/fits

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
