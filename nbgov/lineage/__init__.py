"""Lineage: a record of every cell execution, in a hash-chained sidecar log.

Modules: ``record`` (the record dataclasses), ``store`` (the sidecar),
``fingerprint`` (content hashes), ``analysis`` (names a cell touches),
``files`` (files a cell opens), ``recorder`` (IPython events), ``stale``.
"""
