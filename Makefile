# The two commands in the README are `make app` and `make test`; everything else is plumbing.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8501
STAMP   := $(VENV)/.installed

.PHONY: app test venv lint clean assets

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The launcher prints the host link (and, beyond loopback, the join link), then runs `streamlit run app/main.py`.
app: $(STAMP)
	$(BIN)/python -m app.shared.serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check learngene app pages tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check learngene app pages tests bench

# Re-train the shipped ancestry checkpoints (see assets/README.md); takes a while on a CPU.
assets: $(STAMP)
	bash assets/reproduce.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
