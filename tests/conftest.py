from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import ServeProcess, start_serve


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `inferplane serve` of the default model for the whole session (4 slots)."""
    tmp = tmp_path_factory.mktemp("served")
    sp = start_serve(["--max-body-bytes", "200000", "--parallel", "4"], tmp)
    try:
        yield sp
    finally:
        pids = sp.runtime_pids()
        code = sp.stop()
        assert code == 0, sp.log()
        from helpers import alive

        assert not [p for p in pids if alive(p)], f"orphans left: {pids}"
