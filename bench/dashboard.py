#!/usr/bin/env python3
"""bench/dashboard.py - times every SQL query of the shipped Grafana dashboard.

Run by bench/run.sh's `dashboard` phase, after it has filled the events table
(and its rollup) with synthetic rows; not a test. For each panel's rawSql and
each template variable's query, for each range (1 h, 6 h, 24 h ending at
`--end`) and each filter set ("all": every variable All; "one": every
variable one value, the first site, its first zone and camera, and the first
event type), it expands Grafana's PostgreSQL macros the way Grafana does,
runs the query `--repeat` times in one psql session (the first run warms the
cache and is not counted), and reports the median milliseconds and the rows
returned (a time-series panel's points).

The macros are expanded by tests/integration/grafana_sql.py, which
t_stack.py uses too: one list of what the dashboard may use.

Output: one JSON object on stdout {"queries": [...], "worst": {...}}; the
connection is psql's (PGHOST, PGPORT, PGUSER, PGDATABASE from the harness).
"""
import argparse
import datetime as dt
import json
import re
import statistics
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import grafana_sql  # noqa: E402 (the dashboard's macros, shared with t_stack.py)

DASH = None  # the dashboard, loaded by main()

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}


def expand(sql, start, end, values):
    try:
        return grafana_sql.substitute(sql, values, DASH, start.isoformat(), end.isoformat())
    except ValueError as e:
        sys.exit("dashboard.py: " + str(e))


def psql(sql):
    out = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def timed(sql, repeat):
    """Median ms of repeat runs after one warm-up, and the rows returned."""
    script = "\\timing on\n" + "\n".join([sql.rstrip().rstrip(";") + ";"] * (repeat + 1)) + "\n"
    res = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1"], input=script,
                         check=True, capture_output=True, text=True).stdout.splitlines()
    times, rows, n = [], [], 0
    for line in res:
        m = re.match(r"^Time: ([0-9.]+) ms", line)
        if m:
            times.append(float(m.group(1)))
            rows.append(n)
            n = 0
        elif line:
            n += 1
    if len(times) != repeat + 1 or len(set(rows)) != 1:
        sys.exit(f"dashboard.py: {len(times)} timings, rows {set(rows)} for: {sql}")
    return statistics.median(times[1:]), rows[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--end", required=True, help="ISO timestamp the ranges end at")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    global DASH
    DASH = d = json.load(open(a.dashboard))
    end = dt.datetime.fromisoformat(a.end)
    # the PostgreSQL query variables (not the data source or instance ones)
    variables = [v for v in d["templating"]["list"] if v.get("type") == "query"
                 and v["datasource"]["type"] == "grafana-postgresql-datasource"]
    queries = [("variable " + v["name"], v["query"]) for v in variables]
    for p in d["panels"]:
        for t in p.get("targets", []):
            if t.get("rawSql"):
                queries.append((p["title"], t["rawSql"]))
    results = []
    for rname, seconds in RANGES.items():
        start = end - dt.timedelta(seconds=seconds)
        for fname in ("all", "one"):
            values = {}  # All
            if fname == "one":  # a site, its first zone, that zone's first camera
                for v in variables:
                    if v["name"] == "event_type":
                        continue  # All: one camera has one type, which could be any
                    first = psql(expand(v["query"], start, end, values) + " LIMIT 1")
                    if not first:
                        sys.exit(f"dashboard.py: variable {v['name']} has no value in {rname}")
                    values[v["name"]] = first[0].split("|")[0]
            for name, sql in queries:
                ms, rows = timed(expand(sql, start, end, values), a.repeat)
                results.append({"query": name, "range": rname, "filter": fname,
                                "median_ms": round(ms, 2), "rows": rows})
    worst = max(results, key=lambda r: r["median_ms"])
    most = max(results, key=lambda r: r["rows"])
    json.dump({"repeat": a.repeat, "end": a.end, "queries": results,
               "worst": worst, "most_rows": most}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
