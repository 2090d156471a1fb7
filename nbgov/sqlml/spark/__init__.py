"""``%%sqlml`` on Apache Spark: the same SQL and models, run by PySpark.

Nothing here imports PySpark at module load except where a Spark object is built,
so ``nbgov`` stays importable without the ``spark`` extra.
"""
