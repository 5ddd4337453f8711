"""``inferplane bench``: workloads, load generator, metric definitions and reports.

Imports nothing from the rest of inferplane except ``inferplane.protocol``. Entry points:
``inferplane.bench.cli`` (``add_arguments`` / ``run``) and
``inferplane.bench.fake_server.FakeOpenAIServer`` (a timing-configurable fake for tests).
"""

__all__: list[str] = []
