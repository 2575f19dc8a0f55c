"""The one definition of every table and raw layout; Spark and Arrow schemas derive from here."""

from schemas.raw import RAW_LAYOUTS
from schemas.tables import CDR, CELL, DEN, FLAG, LEAD_COLUMNS, QUARANTINE, TABLES, WARNING_COLUMNS, WHITELIST

__all__ = [
    "CDR",
    "CELL",
    "DEN",
    "FLAG",
    "LEAD_COLUMNS",
    "QUARANTINE",
    "RAW_LAYOUTS",
    "TABLES",
    "WARNING_COLUMNS",
    "WHITELIST",
]
