"""Every read and write of the disk: the lake (`lake` with Spark, `lake_polars` with Polars), run
summaries (`summaries`), the landing zone (`landing`, `landing_files`, `manifest`), the inventories
(`inventory`), atomic files (`files`), locks (`locks`).

Steps (`jobs/ingest.py`, `jobs/detect.py`, ...) hold the logic; they reach the disk only through
these modules, so a change of layout or of atomicity is made once.
"""
