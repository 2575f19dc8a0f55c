"""Configuration files shipped with cdrwatch; `default.yaml` runs everything locally.

The typed loader lives in `jobs.config`; this package only carries the YAML so that it travels
with the code (an editable install, a wheel or the `--py-files` zip given to spark-submit).
"""
