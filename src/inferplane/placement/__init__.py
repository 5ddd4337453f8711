"""Where replicas run: the local process supervisor (and, later, a Ray backend)."""
