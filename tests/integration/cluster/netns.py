"""Running a test module inside a private network namespace (Ray binds every interface otherwise).

``run_module_in_netns(path)`` re-executes pytest on ``path`` under ``unshare -n`` with the
loopback interface up, so nothing the Ray cluster opens can be reached from (or reach) outside
this machine's loopback. The inner run sees ``INFERPLANE_NETNS=1``. Where ``unshare -n`` is not
permitted (no root, no user namespaces) ``netns_unavailable()`` says why, for a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["in_netns", "netns_unavailable", "run_module_in_netns"]


def in_netns() -> bool:
    return os.environ.get("INFERPLANE_NETNS") == "1"


def netns_unavailable() -> str | None:
    """Why a private network namespace cannot be had here (None when it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2) to isolate Ray in a network namespace"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here ({probe.stderr.strip() or probe.returncode}); run as root"
    return None


def run_module_in_netns(path: Path, *, tmp: Path, timeout_s: float,
                        pytest_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """pytest ``path`` inside ``unshare -n`` (loopback up); HOME points at ``tmp`` so Ray's token
    and session files stay out of the user's home."""
    env = {**os.environ, "INFERPLANE_NETNS": "1", "HOME": str(tmp), "RAY_USAGE_STATS_ENABLED": "0",
           "INFERPLANE_MODEL_CACHE": os.environ.get("INFERPLANE_MODEL_CACHE")
           or str(Path.home() / ".cache" / "inferplane" / "models")}
    inner = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
             "--timeout", str(int(timeout_s)), str(path), *pytest_args]
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", *inner], env=env, capture_output=True,
                          text=True, timeout=timeout_s + 60, cwd=str(path.parent))
