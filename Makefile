# Two commands matter: `make run` (set up and open Hangar) and `make test` (set up and run the whole suite).
# Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml changes, and pip's wheel
# cache keeps the compiled llama-cpp-python, so a second run starts in seconds.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned so that machines with the CPU build on disk use it; CUDA users may set TORCH=torch.
TORCH  ?= torch==2.13.0
# llama.cpp build flags. RPC is on so that a model can be spread over worker machines; add e.g. -DGGML_CUDA=on for
# NVIDIA GPUs (Metal is on by default on macOS): LLAMA_CMAKE_ARGS="-DGGML_RPC=ON -DGGML_CUDA=on".
LLAMA_CMAKE_ARGS ?= -DGGML_RPC=ON
# llama.cpp's own llama-perplexity, built once from the sources vendored in llama-cpp-python's sdist into a cache
# outside the repository (like pip's wheel cache): the Workshop's figures are checked against it in `make test`.
LLAMA_TOOLS ?= $(HOME)/.cache/hangar
PERPLEXITY  := $(LLAMA_TOOLS)/llama-build/bin/llama-perplexity
EXTRAS_RUN  := llama,mlx,finetune,serve,docs,tools
EXTRAS_TEST := llama,mlx,finetune,serve,docs,tools,dev

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test check lint llama-tools screenshots bench package clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(MAKE) --no-print-directory system-deps
	$(BIN)/pip install -q "$(TORCH)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e ".[$(EXTRAS_RUN)]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(MAKE) --no-print-directory system-deps
	$(BIN)/pip install -q "$(TORCH)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e ".[$(EXTRAS_TEST)]"
	touch $@ $(VENV)/.run-installed

# Qt needs a few system libraries even offscreen; install them where apt is available and we are root.
system-deps:
	@missing=0; for lib in libxkbcommon.so.0 libxkbcommon-x11.so.0 libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 \
		libxcb-shape.so.0 libxcb-render-util.so.0 libxcb-image.so.0 libEGL.so.1 libGL.so.1 libfontconfig.so.1; do \
		ldconfig -p | grep -q "$$lib" || missing=1; done; \
	if [ $$missing = 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Qt's system libraries"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0 \
			libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 \
			libxcb-render-util0 libxcb-image0 fonts-dejavu-core >/dev/null; \
	elif [ $$missing = 1 ]; then \
		echo "note: some of Qt's system libraries are missing (xcb-cursor, xkbcommon-x11, EGL, fontconfig);" \
		     "install them with your package manager if the window does not open"; \
	fi

run: $(VENV)/.run-installed system-deps
	$(BIN)/python main.py

$(PERPLEXITY): | $(VENV)/.test-installed
	HANGAR_LLAMA_TOOLS=$(LLAMA_TOOLS) $(BIN)/python bench/workshop_llama_tools.py

llama-tools: $(PERPLEXITY)

test: $(VENV)/.test-installed $(PERPLEXITY)
	$(BIN)/lint-imports
	HANGAR_LLAMA_PERPLEXITY=$(PERPLEXITY) QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# The quick tier: everything but the tests marked slow (real training, long generations), for every commit.
check: $(VENV)/.test-installed
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "not slow" -q

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

screenshots: $(VENV)/.test-installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.tools.screenshots docs/screenshots

bench: $(VENV)/.test-installed
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/estimate_accuracy.py
	$(BIN)/python bench/download_speed.py
	$(BIN)/python bench/library_scan.py
	$(BIN)/python bench/chat_speed.py
	$(BIN)/python bench/serve_speed.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/gui_lag.py
	$(BIN)/python bench/finetune_speed.py
	$(BIN)/python bench/finetune_loss.py

# A one-folder app in dist/Hangar (dist/Hangar.app on macOS), then its smoke test.
package: $(VENV)/.test-installed
	packaging/build.sh $(BIN)/python
	QT_QPA_PLATFORM=offscreen dist/Hangar/Hangar --smoke-test --data-dir "$$(mktemp -d)"

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
