"""A table is declared once, as a list of typed columns; Spark, Arrow and Polars schemas derive from it."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# The small vocabulary of column types the lake uses, with their Arrow spelling. Timestamps are
# instants stored in UTC (Spark's TimestampType); the session timezone only affects display.
_ARROW = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ARROW:
            raise ValueError(f"column {self.name}: unknown type {self.type!r}")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()
    doc: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, _ARROW[c.type], c.nullable) for c in self.columns])

    def spark(self):
        """The Spark StructType (imported lazily: a schema is readable without a JVM)."""
        from pyspark.sql import types as T

        spark_types = {
            "string": T.StringType(),
            "int32": T.IntegerType(),
            "int64": T.LongType(),
            "double": T.DoubleType(),
            "bool": T.BooleanType(),
            "date": T.DateType(),
            "timestamp": T.TimestampType(),
            "list<string>": T.ArrayType(T.StringType(), containsNull=True),
        }
        return T.StructType([T.StructField(c.name, spark_types[c.type], c.nullable) for c in self.columns])

    def polars(self, columns: list[str] | None = None) -> dict:
        """The Polars schema of the table's columns (or of `columns`, in that order); Polars is
        imported lazily, as Spark is."""
        import polars as pl

        polars_types = {
            "string": pl.String,
            "int32": pl.Int32,
            "int64": pl.Int64,
            "double": pl.Float64,
            "bool": pl.Boolean,
            "date": pl.Date,
            "timestamp": pl.Datetime("us", "UTC"),
            "list<string>": pl.List(pl.String),
        }
        types = {c.name: polars_types[c.type] for c in self.columns}
        return {name: types[name] for name in (columns or self.names)}
