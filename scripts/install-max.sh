#!/usr/bin/env bash
# Installs Modular MAX (`pip install modular`, which provides the `max` CLI) into its OWN virtual
# environment (never the project's .venv: it brings torch, transformers and the MAX engine, ~2 GB).
#
#   scripts/install-max.sh [VENV]        # default: $INFERPLANE_MAX_VENV or .venv-max
#
# Environment:
#   INFERPLANE_MAX_VENV       where the venv goes (the argument wins)
#   INFERPLANE_MAX_VERSION    modular release (default 26.7.0)
#   INFERPLANE_MAX_OTEL       opentelemetry pin for sdk/api/exporters (default 1.35.0; without the pin
#                             pip cannot resolve modular 26.7.0's opentelemetry requirements)
#   INFERPLANE_MAX_INSTALLER  uv (default; uses a uv on PATH or installs one into the venv) or pip
#
# Idempotent: when the venv already has the pinned release and its `max` program it says so and
# exits in ~1 s. uv does not read pip's configuration, so the find-links / extra index / constraint
# that this machine's pip config names are passed to uv explicitly.
# Measured on a 2-core box: uv 9-13 s (warm uv cache), venv 1.8 GB; the first `max serve` of
# SmolLM2 then compiles for ~2.5 min, a warm restart takes ~20 s (tests/fixtures/max/live/RECORDED.md).
# Serve with: VENV/bin/max serve --model-path HF_DIR --devices cpu --quantization-encoding float32 ...
# and OTEL_SDK_DISABLED=true (MAX_SERVE_DISABLE_TELEMETRY=1 also turns off its /metrics port).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-${INFERPLANE_MAX_VENV:-.venv-max}}"
MAX_VERSION="${INFERPLANE_MAX_VERSION:-26.7.0}"
OTEL="${INFERPLANE_MAX_OTEL:-1.35.0}"
INSTALLER="${INFERPLANE_MAX_INSTALLER:-uv}"
PY="$VENV/bin/python"

t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }

check_installed() {
  [ -x "$PY" ] && [ -x "$VENV/bin/max" ] || return 1
  "$PY" - "$MAX_VERSION" <<'EOF' 2>/dev/null
import importlib.metadata as md
import importlib.util
import sys

assert md.version("modular") == sys.argv[1]
for mod in ("max", "max._entrypoints.pipelines", "max.serve", "max.pipelines"):
    assert importlib.util.find_spec(mod) is not None, mod
EOF
}

if check_installed; then
  echo "modular $MAX_VERSION already installed in $VENV ($(elapsed) s)"
  exit 0
fi

# pip's own configuration on this machine (find-links, extra indexes, constraints) -> uv flags.
pip_cfg() { python3 -m pip config get "global.$1" 2>/dev/null || true; }
uv_flags=()
for link in $(pip_cfg find-links); do uv_flags+=(--find-links "$link"); done
for idx in $(pip_cfg extra-index-url); do uv_flags+=(--extra-index-url "$idx"); done
for c in $(pip_cfg constraint); do [ -f "$c" ] && uv_flags+=(--constraint "$c"); done

pkgs=("modular==$MAX_VERSION"
      "opentelemetry-api==$OTEL" "opentelemetry-sdk==$OTEL"
      "opentelemetry-exporter-otlp-proto-grpc==$OTEL" "opentelemetry-exporter-otlp-proto-http==$OTEL")

[ -x "$PY" ] || python3 -m venv "$VENV"
echo "venv $VENV ready ($(elapsed) s)"

if [ "$INSTALLER" = uv ]; then
  if command -v uv >/dev/null; then
    UV="$(command -v uv)"
  else
    [ -x "$VENV/bin/uv" ] || "$PY" -m pip install -q --disable-pip-version-check uv
    UV="$VENV/bin/uv"
  fi
  echo "installing with $("$UV" --version) ($(elapsed) s)"
  # unsafe-best-match: the local indexes hold only some opentelemetry releases; uv would otherwise
  # stop at the first index that knows a name.
  "$UV" pip install --python "$PY" --index-strategy unsafe-best-match "${uv_flags[@]}" "${pkgs[@]}"
else
  echo "installing with pip ($(elapsed) s)"
  "$PY" -m pip install -q --disable-pip-version-check "${pkgs[@]}"
fi
echo "packages installed ($(elapsed) s)"

if ! check_installed; then
  echo "install check failed: $VENV has no modular $MAX_VERSION with a working max program" >&2
  "$PY" -c "import max._entrypoints.pipelines" >&2 || true
  exit 1
fi
"$PY" -c "import importlib.metadata as md; print('modular', md.version('modular'), 'max', md.version('max'))" \
  2>/dev/null || true
echo "modular $MAX_VERSION installed in $VENV in $(elapsed) s"
