"""The store of runs: a DuckDB file recording each audit, for history and diffs.

``db`` opens a store (lock, file check, schema version and migration), ``schema`` holds
its tables, ``record`` writes a run, ``history`` lists runs, ``diff`` compares two runs
or two saved documents, ``documents`` reads saved audit JSON back. DuckDB is imported
when a store is opened, not when this package is.
"""
