# One entry point per job. Everything runs inside .venv, created on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check fmt lint types bench samples wheel clean

$(STAMP): pyproject.toml setup.py $(wildcard auditor/*.c auditor/capture/*.c auditor/capture/*.h)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'  # spark: the --engine spark tests
	$(BIN)/python -m compileall -q auditor  # an editable install writes no bytecode
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pcap-audit samples/applayering/findings.pcap --ruleset applayering \
		--inventory samples/applayering/findings.inventory.yaml --fail-on never

test: $(STAMP)
	$(BIN)/python -m pytest -q

fmt: $(STAMP)
	$(BIN)/ruff format auditor tests bench samples/make_samples.py

lint: $(STAMP)
	$(BIN)/ruff format --check auditor tests bench samples/make_samples.py
	$(BIN)/ruff check auditor tests bench samples/make_samples.py

types: $(STAMP)
	$(BIN)/mypy

check: lint types test

bench: $(STAMP)
	$(BIN)/python -m compileall -q auditor  # time the code, not compiling it
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/spark_bench.py

samples: $(STAMP)
	$(BIN)/python samples/make_samples.py

wheel: $(STAMP)  # dist/pcap_audit-*.whl: extensions and built-in rulesets included
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info auditor/capture/*.so .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench-memory
bench-memory: $(STAMP)  # streams a generated 10 GB capture into `pcap-audit -`; peak RSS
	$(BIN)/python bench/memory.py
