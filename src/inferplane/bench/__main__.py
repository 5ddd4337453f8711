"""``python -m inferplane.bench``: the ``inferplane bench`` command without the main CLI."""

from __future__ import annotations

import argparse

from inferplane.bench.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the benchmark."""
    parser = argparse.ArgumentParser(
        prog="inferplane bench", description="Load-test an OpenAI-compatible endpoint."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
