#!/usr/bin/env bash
# Create (once) and reuse the project's virtual environment in $BALMS_VENV (default: .venv).
#
# Idempotent: a stamp file records a hash of the requirement files and overrides; when nothing
# changed, this script returns in well under a second. Overrides (environment variables):
#   BALMS_PYTHON          a CPython 3.10 interpreter (default: python3.10, else pyenv's 3.10.x)
#   BALMS_TORCH_REQ       torch requirement(s)   (default: "torch==2.3.1 torchvision==0.18.1")
#   BALMS_DETECTRON2_REQ  detectron2 requirement (default: "sal-detectron2==0.7.2", a PyPI wheel of
#                         upstream detectron2 with a prebuilt _C for CPython 3.10 + torch 2.3.1).
#                         Users who can reach GitHub may build upstream instead, e.g.
#                         BALMS_DETECTRON2_REQ="detectron2 @ git+https://github.com/facebookresearch/detectron2.git"
#                         (with BALMS_TORCH_REQ set to the torch they build against).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BALMS_VENV:-.venv}
TORCH_REQ=${BALMS_TORCH_REQ:-"torch==2.3.1 torchvision==0.18.1"}
D2_REQ=${BALMS_DETECTRON2_REQ:-"sal-detectron2==0.7.2"}

find_python() {
  local cands=()
  [ -n "${BALMS_PYTHON:-}" ] && cands+=("$BALMS_PYTHON")
  cands+=(python3.10)
  if command -v pyenv >/dev/null 2>&1; then
    local v
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | sort -rV); do
      cands+=("$(pyenv prefix "$v")/bin/python")
    done
  fi
  local c
  for c in "${cands[@]}"; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      echo "$c"; return 0
    fi
  done
  echo "error: no CPython 3.10 found (tried: ${cands[*]}); set BALMS_PYTHON" >&2
  return 1
}

CONSTRAINTS=(-c requirements/constraints.txt)
[ -z "${BALMS_TORCH_REQ:-}" ] && CONSTRAINTS+=(-c requirements/torch-constraints.txt)
STAMP="$VENV/.balms-installed"
HASH=$(cat requirements/*.txt setup.py scripts/setup_env.sh | sha256sum | cut -c1-16)
HASH="$HASH $TORCH_REQ $D2_REQ"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  echo "[setup_env] creating $VENV with $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q "pip==26.3" "setuptools==80.9.0" "wheel==0.45.1"
echo "[setup_env] installing $TORCH_REQ $D2_REQ + requirements/requirements.txt (~3 GB on first run)"
# One resolver run for everything: a later, separate install could upgrade numpy/opencv behind
# detectron2's back (see README, "Environment").
# shellcheck disable=SC2086
"${PIP[@]}" install -q $TORCH_REQ "$D2_REQ" -r requirements/requirements.txt "${CONSTRAINTS[@]}"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import detectron2, detectron2._C, torch, balms_det; print('[setup_env] ok: detectron2', detectron2.__version__, 'torch', torch.__version__)"
echo "$HASH" > "$STAMP"
echo "[setup_env] done in $(( $(date +%s) - start )) s"
