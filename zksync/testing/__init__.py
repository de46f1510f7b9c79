"""Real ZooKeeper (and Toxiproxy) for tests: see :mod:`zksync.testing.ensemble` and the
pytest plugin in :mod:`zksync.testing.plugin`."""

from .ensemble import Ensemble, EnsembleError, find_classpath, four_letter

__all__ = ["Ensemble", "EnsembleError", "find_classpath", "four_letter"]
