# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   # environment + train & evaluate Mask R-CNN on the synthetic long-tailed dataset
#   make test   # environment + the test suite
# Both create .venv once (scripts/setup_env.sh) and reuse it afterwards.
PY := .venv/bin/python
CONFIG ?= configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml
OUTPUT ?= output/lt_shapes_softmax
PYTEST_ARGS ?=

.PHONY: env demo test
env:
	@bash scripts/setup_env.sh

demo: env
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(PY) tools/train_net.py --config-file $(CONFIG) OUTPUT_DIR $(OUTPUT)

test: env
	$(PY) -m pytest tests -q -ra $(PYTEST_ARGS)
