"""Lineage: a record of every cell execution, in a hash-chained sidecar log.

Hooks (``recorder``) observe a cell (``namespace``, ``files``, ``native_files``,
``sqlreport``), ``build`` makes the typed record (``record``), ``journal`` appends it to
the sidecar (``store``) and keeps provenance and the one stale rule (``stale``) current.
"""
