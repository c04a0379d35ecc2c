# Two entry points a newcomer needs: `make demo` and `make test`.
# Both create .venv and install what is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build; on a CUDA machine set TORCH=torch (or a CUDA wheel) before the first run.
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test bench tfenv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# Train LeNet-5 on Fashion-MNIST and print the test accuracy.
demo: $(STAMP)
	sh scripts/demo-data.sh $(BIN)/neuralab
	$(BIN)/neuralab train --model lenet5 --data fashion-mnist --overwrite --out runs/demo

# The whole test suite. First what the tests need beyond Python: Fashion-MNIST where neuralab
# looks (as `make demo` gets it; not needed when NEURALAB_TEST_DATASETS holds it) and Chromium
# for the browser tests. Installed as root on Debian; elsewhere this step installs nothing and
# says nothing, and the tests say what is missing.
test: $(STAMP)
	@test -d "$$NEURALAB_TEST_DATASETS/fashion-mnist" || sh scripts/demo-data.sh $(BIN)/neuralab 2>/dev/null || true
	-@sh scripts/ci-system-deps.sh
	$(BIN)/python -m pytest

# TensorFlow for the benchmarks' TF-Keras columns (bench/bench_zoo.py, bench/bench_lstm.py), in an
# environment of its own beside neuralab and the same torch: neuralab never imports it.
TFENV  ?= .tfenv
TF     ?= tensorflow-cpu==2.21.0
tfenv: $(TFENV)/.installed
$(TFENV)/.installed: pyproject.toml
	test -x $(TFENV)/bin/python || $(PYTHON) -m venv $(TFENV)
	$(TFENV)/bin/pip install --quiet --disable-pip-version-check "$(TORCH)" "$(TF)"
	$(TFENV)/bin/pip install --quiet --disable-pip-version-check -e .
	touch $@

# The main CPU benchmarks (about 45 min on two cores); each writes its section of
# docs/benchmarks.md. The others, the zoo against TF-Keras among them (`make tfenv` first),
# say at their top how to run them.
bench: $(STAMP)
	$(BIN)/python bench/bench_lenet.py --full
	$(BIN)/python bench/bench_web.py
	$(BIN)/python bench/bench_lstm.py --options
	$(BIN)/python bench/bench_compare.py

clean:
	rm -rf $(VENV) $(TFENV) runs build *.egg-info
