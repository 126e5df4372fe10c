#!/usr/bin/env python3
"""Query camjoin's archives and its live table together, with DuckDB.

The seed design kept old events in S3 and read them with Athena. Here the
retention's archives (archive.dir/T/YYYY/MM/T_pYYYYMMDD[.N].csv.gz, gzip CSV
with a header, README "Retention and archive") are read in place by DuckDB,
and the live table through DuckDB's PostgreSQL extension (read-only), as one
view:

    events    every event once: the live table's rows and the archives',
              one row per (event_id, event_ts), the live one first (a row
              is in both only after a replay wrote an archived day again)
    archived  the archives' rows, as they are in the files
    live      the live table's rows
  each with the table's columns and `source` ('archive' or 'live').

    history.py --archive DIR --pg CONNINFO [--table T] [--sql QUERY]

prints the query's result as CSV with a header; the default query counts
events per UTC day and site, and how many of them come from the archives.
Sessions run in UTC. Dependencies: requirements.txt (DuckDB and the
extension's wheel, from PyPI).
"""
import argparse
import csv
import glob
import os
import sys

import duckdb
from duckdb_extensions import import_extension

# the events table's columns (config/schema.sql), as DuckDB types
COLUMNS = [
    ("event_id", "VARCHAR"), ("event_ts", "TIMESTAMPTZ"), ("camera_id", "VARCHAR"),
    ("event_type", "VARCHAR"), ("confidence", "FLOAT"), ("object_count", "INTEGER"),
    ("attributes", "VARCHAR"), ("site_id", "VARCHAR"), ("site_name", "VARCHAR"),
    ("zone", "VARCHAR"), ("latitude", "DOUBLE"), ("longitude", "DOUBLE"),
    ("kafka_partition", "INTEGER"), ("kafka_offset", "BIGINT"), ("ingested_at", "TIMESTAMPTZ"),
]

DEFAULT_SQL = """
SELECT CAST(timezone('UTC', event_ts) AS DATE) AS day, site_id, count(*) AS events,
       count(*) FILTER (WHERE source = 'archive') AS archived
FROM events GROUP BY ALL ORDER BY day, site_id NULLS FIRST
"""


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_lit(text):
    return "'" + text.replace("'", "''") + "'"


def casts():
    return ", ".join(f"CAST({quote_ident(c)} AS {t}) AS {quote_ident(c)}" for c, t in COLUMNS)


def open_views(con, archive, conninfo, table):
    con.execute("SET TimeZone = 'UTC'")
    import_extension("postgres_scanner", con=con)
    con.execute(f"ATTACH {quote_lit(conninfo)} AS pg (TYPE postgres, READ_ONLY)")
    con.execute(f"CREATE VIEW live AS SELECT {casts()}, 'live' AS source "
                f"FROM pg.public.{quote_ident(table)}")
    pattern = os.path.join(archive, table, "*", "*", f"{table}_p*.csv.gz")
    files = sorted(glob.glob(pattern))
    if files:
        # the columns in the table's order (the files' header says the same);
        # PostgreSQL's CSV: NULL unquoted and empty, an empty string quoted ("")
        columns = "{" + ", ".join(f"{quote_lit(c)}: {quote_lit(t)}" for c, t in COLUMNS) + "}"
        listed = "[" + ", ".join(quote_lit(f) for f in files) + "]"
        con.execute(f"CREATE VIEW archived AS SELECT {casts()}, 'archive' AS source "
                    f"FROM read_csv({listed}, header = true, columns = {columns}, "
                    f"auto_detect = false, allow_quoted_nulls = false)")
    else:
        con.execute("CREATE VIEW archived AS SELECT * FROM live WHERE false")
    con.execute("CREATE VIEW events AS SELECT * FROM "
                "(SELECT * FROM live UNION ALL SELECT * FROM archived) "
                "QUALIFY row_number() OVER (PARTITION BY event_id, event_ts "
                "ORDER BY source DESC) = 1")
    return len(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", required=True, help="camjoin's archive.dir")
    ap.add_argument("--pg", required=True, help="libpq connection string or postgresql:// URI")
    ap.add_argument("--table", default="camera_events", help="postgres.table (default camera_events)")
    ap.add_argument("--sql", default=DEFAULT_SQL, help="the query (views: events, archived, live)")
    a = ap.parse_args()
    con = duckdb.connect()
    try:
        nfiles = open_views(con, a.archive, a.pg, a.table)
        cur = con.execute(a.sql)
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow([d[0] for d in cur.description])
        for row in cur.fetchall():
            out.writerow(row)
    except duckdb.Error as e:
        print(f"history.py: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"history.py: {nfiles} archive files under {a.archive}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
