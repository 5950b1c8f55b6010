# py-faster-rcnn in PyTorch: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements.stamp

.PHONY: setup build test demo bench clean

# A venv with the pinned requirements (re-installed only when requirements.txt changes), then lib's
# extensions built in place against that venv's torch (no pip build isolation).
setup: $(STAMP) build

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

test: setup
	$(PY) -m pytest -q tests

demo: setup
	@echo "The end-to-end training demo is not built yet (see README: status)."

bench: setup
	$(PY) tools/bench_ops.py

clean:
	rm -rf build lib/utils/bbox.c lib/nms/cpu_nms.cpp
	find lib -name '*.so' -delete
