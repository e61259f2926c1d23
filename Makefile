# pytvix developer entry points. Every target sets up what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SYSTEM_STAMP := $(VENV)/.system-deps-stamp
SRC := src tests bench scripts fuzz native

.PHONY: setup system-deps proto proto-check fmt lint type native-test test check bench daemon clean fuzz

## Python dependencies in .venv (editable install with every extra and the dev tools)
setup: $(STAMP)
NATIVE := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)
$(STAMP): pyproject.toml $(SYSTEM_STAMP) $(NATIVE)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	$(BIN)/pip install -q ./native
	touch $(STAMP)

## Debian packages: libfuse3 headers for pyfuse3, nix, fuse3, servers used by tests
system-deps: $(SYSTEM_STAMP)
$(SYSTEM_STAMP): scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	mkdir -p $(VENV) && touch $(SYSTEM_STAMP)

## Regenerate src/pytvix/_proto from proto/ (committed; CI checks it does not drift)
proto: setup
	$(BIN)/python scripts/gen_proto.py

proto-check: setup
	$(BIN)/python scripts/gen_proto.py --check

fmt: setup
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

lint: setup
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

type: setup
	$(BIN)/mypy --strict src native/tests native/bench_bao.py

## The test suite alone
test: setup
	$(BIN)/pytest -q

## The native extension's own tests (its outboards against the bao-tree crate)
native-test:
	cargo test -q --manifest-path native/Cargo.toml

## Everything CI runs: lint, types, generated-code drift, native and Python tests
check: lint type proto-check native-test test

## Benchmarks against peers (README, "Benchmarks"); prints ratios
bench: setup
	$(BIN)/python -m bench

## Long fuzz runs (before resolving a fuzzing issue): each target FUZZ_SECONDS (default 600)
## in turn; new inputs and crash-* files go to fuzz/.work/<target>/
FUZZ_SECONDS ?= 600
fuzz: setup
	@failed=""; for t in $$($(BIN)/python -m fuzz --list); do \
		echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		$(BIN)/python -m fuzz $$t --seconds $(FUZZ_SECONDS) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (see fuzz/.work/)"; exit 1; fi

## The store daemon on the embedded default store ($$TVIX_STORE_HOME or ~/.local/share/pytvix)
daemon: setup
	$(BIN)/tvix-store daemon

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
