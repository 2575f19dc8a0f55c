"""Evidence text on Polars, written as Spark writes it: Java's `%.2f` (half up on the decimal form
of the double), plurals, and clock times in the carriers' local time. Used on flag-sized frames."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import polars as pl


def java_fixed(value: float | None, digits: int) -> str | None:
    """`String.format("%.<digits>f", value)` as the JVM does it: half up on the shortest decimal form."""
    if value is None or not math.isfinite(value):
        return None
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def fixed(value: pl.Expr, digits: int) -> pl.Expr:
    """`java_fixed` of a column (flag-sized frames only: it runs per value)."""
    return value.map_elements(lambda v: java_fixed(v, digits), return_dtype=pl.String, skip_nulls=True)


def count_text(n: pl.Expr, noun: str) -> pl.Expr:
    """'1 SIM', '3 SIMs'."""
    return pl.format(f"{{}} {noun}{{}}", n, pl.when(n == 1).then(pl.lit("")).otherwise(pl.lit("s")))


def clock(instant: pl.Expr, timezone: str) -> pl.Expr:
    """HH:MM of an instant in the carriers' local time."""
    return instant.dt.convert_time_zone(timezone).dt.strftime("%H:%M")


def span_text(first: pl.Expr, last: pl.Expr, timezone: str) -> pl.Expr:
    return pl.concat_str(clock(first, timezone), pl.lit("–"), clock(last, timezone))
