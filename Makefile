# The two commands of the README: `make demo` (the main job) and `make test` (every backend).
# Both install what they need into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BACKENDS ?= jax torch tensorflow
STAMP := $(VENV)/.installed

.PHONY: install demo test test-backend lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77"
	# The CPU wheel first, so that the `torch` extra's range is already satisfied.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[jax,torch,tensorflow-cpu,embedded,train,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/python tools/train.py --overwrite

# One pytest process per backend; all backends run even if one fails.
test: $(STAMP)
	@status=0; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests keras_realnvp --doctest-modules || status=1; \
	done; exit $$status

test-backend: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests keras_realnvp --doctest-modules

lint: $(STAMP)
	$(BIN)/ruff check keras_realnvp tools tests
