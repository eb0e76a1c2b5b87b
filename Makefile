# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs Cockpit with what the demo needs, trains the digits demo
#   make test   adds the test extras and runs the whole suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --progress-bar on --disable-pip-version-check

.PHONY: demo test install lint bench clean

$(BIN)/python:
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --progress-bar on --upgrade pip

# torch first, pinned: this machine has the 2.13.0 CPU build and anything
# looser would pull gigabytes of CUDA packages.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	@echo "==> installing torch 2.13.0 (CPU build)"
	$(PIP) torch==2.13.0
	@echo "==> installing Cockpit and what the demo needs (scikit-learn)"
	$(PIP) -e '.[demo]'
	touch $@

# The test extras (JupyterLab, Playwright, ruff, ...) and the frameworks the adapters are
# tested against (MMEngine, Lightning, Hugging Face), and nvidia-ml-py (the system panel
# without a GPU), only for the tests.
$(VENV)/.installed-test: $(VENV)/.installed-demo
	@echo "==> installing the test extras and the adapters' frameworks"
	$(PIP) -e '.[demo,test,mmengine,lightning,hf,gpu]'
	touch $@

install: $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	@echo "==> training the digits demo: cockpit run demos/digits.py"
	$(BIN)/cockpit run demos/digits.py

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check cockpit widgets tests demos benchmarks

bench: $(VENV)/.installed-demo
	$(BIN)/python benchmarks/loop_overhead.py

clean:
	rm -rf $(VENV) work_dirs runs
