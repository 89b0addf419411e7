# Two commands: `make demo` writes a real report for the shipped example,
# `make test` runs the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cryovalid report examples/emd_3488.map.gz --threshold 0.07 --resolution 3.2 --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_level0.py
	$(BIN)/python benchmarks/bench_localmaps.py
	$(BIN)/python benchmarks/bench_hand.py
	$(BIN)/python benchmarks/bench_level1.py

clean:
	rm -rf $(VENV) out .pytest_cache
