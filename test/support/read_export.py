"""Reads an exported file as a user would, and prints what the tests compare with the database.

usage: read_export.py FILE parquet|csv.gz

Prints one JSON object: the Arrow schema (parquet), every row with decimals as exact text and
open_time as epoch ms, and what polars and DuckDB read from the same file as they are.
"""
import json
import sys
from decimal import Decimal

path, fmt = sys.argv[1], sys.argv[2]
out = {}


def text(v):
    if v is None:
        return None
    if isinstance(v, Decimal):
        return format(v, "f")
    return v


if fmt == "parquet":
    import duckdb
    import polars as pl
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out["schema"] = {f.name: str(f.type) for f in table.schema}
    cols = table.column_names
    rows = []
    data = {c: table.column(c).to_pylist() for c in cols}
    for i in range(table.num_rows):
        row = {}
        for c in cols:
            v = data[c][i]
            if c == "open_time":
                row[c] = int(v.timestamp() * 1000)
                row["tz"] = str(v.tzinfo)
            else:
                row[c] = text(v)
        rows.append(row)
    out["rows"] = rows
    pdf = pq.read_table(path).to_pandas()
    out["pandas"] = {"rows": len(pdf), "open_time_dtype": str(pdf["open_time"].dtype)}
    pdl = pl.read_parquet(path)
    out["polars"] = {"rows": pdl.height, "open_time": str(pdl.schema["open_time"]), "open": str(pdl.schema["open"]),
                     "sum_volume": text(pdl["volume"].sum()) if pdl.height else None}
    con = duckdb.connect()
    n, ot, first = con.execute(
        f"select count(*), typeof(min(open_time)), min(open_time)::varchar from read_parquet('{path}')").fetchone()
    out["duckdb"] = {"rows": n, "open_time": ot, "first": first,
                     "sum_volume": text(con.execute(f"select sum(volume) from read_parquet('{path}')").fetchone()[0])}
else:
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    out["columns"] = list(df.columns)
    out["rows"] = [{c: (None if r[c] == "" else r[c]) for c in df.columns} for r in df.to_dict("records")]

json.dump(out, sys.stdout)
