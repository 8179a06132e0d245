# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.poppk-installed
OUT    ?= out

.PHONY: demo demo-analytes test test-fast install clean notebooks lock

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/poppk demo --out $(OUT)

# The optional second analysis: conjugate, payload DM4 and S-methyl-DM4 in one model.
demo-analytes: $(STAMP)
	$(BIN)/poppk demo --analytes --out $(OUT)/analytes

# Two workers (pytest-xdist): tests that share fitted fixtures stay on one worker (tests/conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q -ra --durations=25 -n 2 --dist loadgroup

# Executed notebooks with their figures (notebooks/executed/*.ipynb); after `make demo`
# they load the demo's fits from $(OUT)/fits instead of refitting.
notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py --fit-store $(OUT)/fits

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Upgrade within pyproject's ranges and pin the result (then run `make test` before committing it).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	( echo "# Exact versions of every dependency, as tested (make installs with -c constraints.txt);"; \
	  echo "# the compatible ranges stay in pyproject.toml. Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable ) > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
