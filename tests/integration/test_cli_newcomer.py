"""What a newcomer meets on the command line: messages that point the right way, help, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.cli import build_parser, main
from inferplane.config.models import parse_config
from inferplane.models import ModelStore
from inferplane.server import prepare_deployments


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize("kind", ["text file", "folder"])
def test_serve_a_path_that_is_not_a_gguf_says_what_is_wrong_with_the_model(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    if kind == "folder":
        target = tmp_path / "weights"
        target.mkdir()
    else:
        target.write_text("my notes\n")
    assert main(["serve", "--model", str(target), "--port", "9"]) == 2
    err = _err(capsys)
    assert str(target) in err
    assert ("not a GGUF file" in err) if kind == "text file" else ("is a folder" in err)
    assert "name must be" not in err and "Tuple should have" not in err


def test_a_corrupt_gguf_is_refused_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 12)
    assert main(["serve", "--model", str(bad), "--port", "9"]) == 2
    err = _err(capsys)
    assert f"cannot load model file {bad}:" in err
    assert "gateway listening" not in err and "Traceback" not in err


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("deployments:\n  - name: a\n    runtime: embeded\n", "unknown runtime 'embeded'; did you mean 'embedded'?"),
    ("deployments:\n  - name: a\n    replica: 2\n", "did you mean 'replicas'?"),
    ("deployments:\n  - name: a\n    model: /no/such/model.gguf\n", "model file not found: /no/such/model.gguf"),
    ("deployments:\n  - name: a\n    model: gpt-9\n", "neither a file nor a known model name"),
    ("deployments:\n  - name: a\n    runtime: openai\n", "cannot launch replicas"),
    ("deployments:\n  - name: a\n    fallback: b\n", "fallback 'b' must name another deployment"),
])
def test_config_validate_rejects_what_serve_would(yaml_text: str, message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "deploy.yaml"
    f.write_text(yaml_text)
    assert main(["config", "validate", str(f)]) == 2
    assert message in _err(capsys)


def test_config_validate_accepts_a_store_model_without_downloading_it(tmp_path: Path, monkeypatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("INFERPLANE_MODEL_CACHE", str(tmp_path / "empty-cache"))
    f = tmp_path / "deploy.yaml"
    f.write_text("deployments:\n  - name: smollm2\n    model: smollm2\n")
    assert main(["config", "validate", str(f)]) == 0
    assert "ok (1 deployment(s): smollm2)" in capsys.readouterr().out
    assert not (tmp_path / "empty-cache" / "smollm2").exists()


def test_serve_with_an_unknown_flag_shows_serves_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--bogus"])
    assert exc.value.code == 2
    err = _err(capsys)
    assert err.startswith("usage: inferplane serve") and "unrecognized arguments: --bogus" in err


def test_help_has_a_description_for_every_command_and_option() -> None:
    parser = build_parser()
    top = parser.format_help()
    assert "``" not in top and "examples:" in top
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert p.description, f"`inferplane {name}` has no description"
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"`inferplane {name} {action.option_strings[0]}` has no help text"


def test_runtimes_check_says_openai_is_usable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtimes", "--check"]) == 0
    usable = capsys.readouterr().out.split("USABLE HERE", 1)[1]
    line = next(ln for ln in usable.splitlines() if ln.split()[:1] == ["openai"])
    assert line.split()[1] == "yes" and "endpoints" in line


def test_the_startup_lines_state_threads_and_context(capsys: pytest.CaptureFixture[str]) -> None:
    said: list[str] = []
    store = ModelStore()
    path = store.resolve("smollm2", fetch=False)  # scripts/test.sh pulls it before the tests
    cfg = parse_config({"deployments": [{"name": "m", "model": str(path), "replicas": 2}]})
    (dep,) = prepare_deployments(cfg, store, said.append)
    threads = next(s for s in said if "CPU thread(s) per replica" in s)
    assert f"m: {dep.threads} CPU thread(s) per replica" in threads and "split across 2 local replica(s)" in threads
    ctx = next(s for s in said if "tokens per sequence" in s)
    assert dep.context_length_tokens == 8192 and "context 8192 tokens per sequence" in ctx
