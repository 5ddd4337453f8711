"""Where model weights come from: local paths, or named models fetched into a local store.

A small leaf package (docs/design.md) used by the CLI and runtime
adapters (imports nothing else from inferplane).
"""

from inferplane.models.store import CATALOG, ModelError, ModelStore, PackagedModel

__all__ = ["CATALOG", "ModelError", "ModelStore", "PackagedModel"]
