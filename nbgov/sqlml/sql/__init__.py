"""SQL text handled without running it: statements of a cell, quoting, notebook frames,
the tables and files a statement names, and DuckDB errors as one line."""
