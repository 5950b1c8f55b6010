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

# The main job: generate the built-in dataset, train the small network end to end on it, test it (prints
# test_net's `Mean AP = 0.xxxx`), then draw its detections into output/demo/ and say where the pictures and
# metrics are. A rerun resumes and retests.
demo: setup
	experiments/scripts/faster_rcnn_end2end.sh cpu TINY shapes
	$(PY) tools/demo.py
	@echo "Where to look:"
	@echo "  detections:   output/demo/index.html"
	@echo "  training:     output/faster_rcnn_end2end/shapes_trainval/loss.png (log: train_log.jsonl, log.txt)"
	@for d in output/faster_rcnn_end2end/shapes_test/*/; do test -f $$d/metrics.json && \
	  echo "  test metrics: $${d}metrics.json, $${d}pr_curves.png"; done; true

bench: setup
	$(PY) tools/bench_ops.py
	$(PY) tools/bench_net.py

clean:
	rm -rf build lib/utils/bbox.c lib/nms/cpu_nms.cpp
	find lib -name '*.so' -delete
