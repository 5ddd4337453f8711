"""The Ray tests (``ray_cases.py``), run inside a private network namespace.

Ray's processes listen on every interface; ``unshare -n`` with only loopback up keeps all of
it on this machine. ``pytest -m ray`` runs just these.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from netns import in_netns, netns_unavailable, run_module_in_netns

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).parent


@pytest.mark.parametrize("module", ["ray_cases.py"])
def test_ray_cases_in_a_private_network_namespace(module: str, tmp_path: Path) -> None:
    if in_netns():
        pytest.skip("already inside the namespace")
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed: pip install 'inferplane[ray]'")
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    result = run_module_in_netns(HERE / module, tmp=tmp_path, timeout_s=900, pytest_args=("-s",))
    out = result.stdout + result.stderr
    print(out[-6000:])
    assert result.returncode == 0, out[-12000:]
    assert " passed" in out and " skipped" not in out.splitlines()[-1], out[-3000:]
