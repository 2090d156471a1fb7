"""compile: a statement, the catalog and the relations it names in, a ``Prepared`` out
(final SQL as a sqlglot tree, scoring steps, EXPLAIN notes, lineage activity); no data
is read or scored here. Execution and the optimizer never import each other."""
