# Two commands: `make demo` writes a real report for the shipped example,
# `make test` runs the test suite (`make test-fast` the quick tier). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cryovalid report examples/emd_3488.map.gz --threshold 0.07 --resolution 3.2 \
		--model examples/5me2.pdb.gz --out out/demo --force

# both tiers run on two processes (pytest-xdist): the tests are independent (tmp_path, free
# ports, no shared files); PYTEST_WORKERS=0 runs them in this process. Each process computes
# with one thread (FFTs, BLAS, OpenMP): two processes of two threads each on 2 cores took a
# minute longer (8 min 35 s against 7 min 36 s); with PYTEST_WORKERS=0 set TEST_THREADS=2.
PYTEST_WORKERS ?= 2
TEST_THREADS ?= 1
TEST_ENV = CRYOVALID_WORKERS=$(TEST_THREADS) OPENBLAS_NUM_THREADS=$(TEST_THREADS) \
	OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS)

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS)

# the quick loop: everything but the real-data and end-to-end tests marked slow (<= 2 min)
test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

# the web service on http://127.0.0.1:8000 with the embedded database and worker (docs/service.md)
serve: $(STAMP)
	$(BIN)/cryovalid serve --data out/service

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_level0.py
	$(BIN)/python benchmarks/bench_localmaps.py
	$(BIN)/python benchmarks/bench_hand.py
	$(BIN)/python benchmarks/bench_level1.py
	$(BIN)/python benchmarks/bench_level_a.py
	$(BIN)/python benchmarks/bench_level2.py
	$(BIN)/python benchmarks/bench_level3.py
	$(BIN)/python benchmarks/bench_level4.py
	$(BIN)/python benchmarks/bench_level5.py
	$(BIN)/python benchmarks/bench_batch.py
	$(BIN)/python benchmarks/bench_service.py

clean:
	rm -rf $(VENV) out .pytest_cache
