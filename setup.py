"""cdrwatch: telecom CDRs in, fraud-den leads for field units out."""

from setuptools import find_packages, setup

# Pins that resolve together on Python 3.11 / Java 17 (see README "Dependencies").
CORE = [
    "pyspark==4.3.0",
    "pyarrow==26.0.1",
    "pandas==2.3.3",
    "numpy==2.4.6",
    "polars==2.1.0",
    "networkx==3.6.1",
    "great-expectations==1.24.1",
    "pyyaml==6.0.3",
    "rich==15.0.0",
    "pydantic==2.14.4",
    "psutil==7.2.2",
    "plotly==7.1.0",
    "xlsxwriter==3.3.1",
    "openpyxl==3.1.5",  # reading the lead workbooks field units send back (cdrwatch feedback import)
]
DEV = [
    "pytest==9.2.0",
    "chispa==0.12.0",
    "selenium==4.51.0",
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "ipykernel==7.4.0",
    "hypothesis==6.170.17",
    "duckdb==2.0.1",  # bench/duckdb_reference.py only: the one-box reference of `make bench`
    "ruff==0.17.6",  # make lint (in make test and test-fast): lint + format check
]
AIRFLOW = [
    "apache-airflow==3.3.2",
    "apache-airflow-providers-apache-spark==5.6.0",
]

setup(
    name="cdrwatch",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11",
    # simulator/ (the synthetic city and the evaluator) is demo and test tooling beside the product:
    # not installed; `cdrwatch simulate|evaluate` load it from a checkout.
    packages=find_packages(include=["schemas*", "detectors*", "jobs*", "conf*"]),
    package_data={"conf": ["*.yaml", "*.properties"]},
    install_requires=CORE,
    extras_require={"dev": DEV, "airflow": AIRFLOW},
    entry_points={"console_scripts": ["cdrwatch = jobs.cli:main"]},
)
