"""`inferplane serve --config` with several deployments of the embedded runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from helpers import start_serve

pytestmark = pytest.mark.integration


def test_a_deployment_file_serves_several_models(tmp_path: Path) -> None:
    cfg = {"deployments": [
        {"name": "smol-a", "model": "smollm2", "max_concurrent_sequences": 2, "threads": 1},
        {"name": "smol-b", "model": "smollm2", "max_concurrent_sequences": 1, "threads": 1,
         "context_length_tokens": 1024},
    ]}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sp = start_serve(["--config", str(path)], tmp_path)
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        assert sorted(m.id for m in client.models.list()) == ["smol-a", "smol-b"]
        for name in ("smol-a", "smol-b"):
            r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            assert r.model == name and r.choices[0].message.content
        eps = {e["deployment"]: e for e in sp.endpoints()}
        assert eps["smol-a"]["url"] != eps["smol-b"]["url"]
    finally:
        assert sp.stop() == 0


def test_cli_prints_the_config_schema_and_validates_files(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "inferplane", "config", "schema"], capture_output=True, text=True,
                         check=True).stdout
    schema = json.loads(out)
    assert "deployments" in schema["properties"]
    good = tmp_path / "g.yaml"
    good.write_text("deployments:\n  - name: a\n")
    r = subprocess.run([sys.executable, "-m", "inferplane", "config", "validate", str(good)], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0 and "ok" in r.stdout
    bad = tmp_path / "b.yaml"
    bad.write_text("deployments:\n  - name: a\n    fallback: nope\n")
    r = subprocess.run([sys.executable, "-m", "inferplane", "config", "validate", str(bad)], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 2 and "fallback 'nope' must name another deployment" in r.stderr
