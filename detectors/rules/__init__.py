"""What each detector looks for, engine-free: its fixed numbers, patterns, columns and plain-Python
parts, one module per detector. The Spark detectors (`detectors/*.py`) and their Polars twins
(`detectors/local/`) both import them from here, so a rule is written once and the local engine
never imports pyspark."""
