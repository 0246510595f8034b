# Two commands, on a fresh machine too (see README.md):
#   make demo   # softmax vs post-hoc logit adjustment vs decoupled Balanced Softmax on lt_shapes (~18 min on 2 cores)
#   make test   # the test suite (what .ci/run runs)
# Both create the environment on first use (make env: .venv/, ~2 min, ~3 GB of downloads) and reuse it afterwards.
# make train CONFIG=... OUTPUT=... trains and evaluates any one config.
PY := .venv/bin/python
CONFIG ?= configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml
OUTPUT ?= output/lt_shapes_softmax
DEMO_METHODS ?= softmax softmax+la bs_decoupled
DEMO_ITERS ?= 600
PYTEST_ARGS ?=
# the suite on every core, at most 4 workers (each holds its own torch and lt_shapes); TEST_WORKERS=0: one process
TEST_WORKERS ?= $$(n=$$(nproc); [ $$n -lt 4 ] && echo $$n || echo 4)
THREADS := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)}

.PHONY: env demo train test
env:
	@bash scripts/setup_env.sh

# lt_shapes, seed 0: stage 1 (softmax, 600 iterations of batch 8), post-hoc logit adjustment of it (no
# training), decoupled Balanced Softmax from it (150 iterations); the table at the end (~18 min on 2 cores).
# DEMO_ITERS=1200: the long-tail benchmark's schedule (~32 min; stage 2 keeps its quarter).
# One line says what it is about to do before the environment's set-up (hence env from the recipe, not as a
# prerequisite); then the runner prints its plan with estimates, and the time left while it trains.
demo:
	@echo "make demo: sets up the environment first (.venv, scripts/setup_env.sh: ~3 GB and several minutes the first \
	time, under a second after), then runs $(DEMO_METHODS) on lt_shapes (seed 0, $(DEMO_ITERS) iterations) and tables \
	them side by side (APr: the rare classes)"
	@$(MAKE) --no-print-directory env
	$(THREADS) $(PY) benchmarks/long_tail_benchmark.py --seeds 0 --methods $(DEMO_METHODS) --iters $(DEMO_ITERS) \
		--stream --cache output/demo --runs-dir output/demo/runs --report output/demo/long_tail

train: env
	$(THREADS) $(PY) tools/train_net.py --config-file $(CONFIG) OUTPUT_DIR $(OUTPUT)

test: env
	$(PY) -m pytest tests -q -ra -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)
