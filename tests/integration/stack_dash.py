# stack_dash.py — t_stack.sh's checks of the Grafana dashboard
# (deploy/grafana/dashboards/camjoin.json): the schema and its conventions
# (dash-static), its Prometheus expressions for promtool (dash-rules,
# dash-metrics), and its SQL run against PostgreSQL (dash-sql, dash-run-all).
# Commands of t_stack.py; DASH_FROM/DASH_TO are the time range, as Grafana
# writes it into SQL.
import copy
import csv
import io
import json
import os
import re
import subprocess

import jsonschema
import yaml

import grafana_sql  # beside this file
from stack_common import PG_TYPE, check, datasources, fail, load_dash, ok


def cmd_dash_static(schema_path):
    d = load_dash()
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    v = jsonschema.Draft7Validator(schema)

    def rejected(name, mutate):
        x = copy.deepcopy(d)
        mutate(x)
        check(any(True for _ in v.iter_errors(x)), "schema rejects " + name)

    pgp = next(i for i, p in enumerate(d["panels"]) if p.get("datasource", {}).get("type") == PG_TYPE)
    prp = next(i for i, p in enumerate(d["panels"]) if p.get("datasource", {}).get("type") == "prometheus")
    pgv = next(i for i, x in enumerate(d["templating"]["list"]) if x["name"] == "site")
    row = next(i for i, p in enumerate(d["panels"]) if p["type"] == "row")
    rejected("a panel without datasource", lambda x: x["panels"][pgp].pop("datasource"))
    rejected("a panel without targets", lambda x: x["panels"][pgp].pop("targets"))
    rejected("a panel with no target", lambda x: x["panels"][prp].update(targets=[]))
    rejected("a SQL target without rawSql", lambda x: x["panels"][pgp]["targets"][0].pop("rawSql"))
    rejected("a Prometheus target without expr", lambda x: x["panels"][prp]["targets"][0].pop("expr"))
    rejected("a target without datasource", lambda x: x["panels"][prp]["targets"][0].pop("datasource"))
    rejected("a variable without datasource", lambda x: x["templating"]["list"][pgv].pop("datasource"))
    rejected("an All option without allValue", lambda x: x["templating"]["list"][pgv].pop("allValue"))
    rejected("a datasource variable without a default",
             lambda x: x["templating"]["list"][0].pop("current"))
    rejected("a row with targets", lambda x: x["panels"][row].update(targets=[{"refId": "A"}]))
    rejected("a dashboard without uid", lambda x: x.pop("uid"))

    # data sources through variables (Grafana's convention: the dashboard can
    # be imported anywhere); their defaults are the provisioned ones
    ds = datasources()
    dsvars = {x["name"]: x for x in d["templating"]["list"] if x["type"] == "datasource"}
    for x in dsvars.values():
        uid = x["current"]["value"]
        check(uid in ds and ds[uid]["type"] == x["query"],
              "datasource variable %s defaults to a provisioned %s" % (x["name"], x["query"]), uid)
    queried = [p for p in d["panels"] if p["type"] != "row"]
    refs = [("panel " + p["title"], p["datasource"]) for p in queried]
    refs += [("target of " + p["title"], t["datasource"]) for p in queried for t in p["targets"]]
    refs += [("variable " + x["name"], x["datasource"]) for x in d["templating"]["list"]
             if x["type"] == "query"]
    for what, r in refs:
        m = re.fullmatch(r"\$\{(\w+)\}", r["uid"])
        if not m or m.group(1) not in dsvars or dsvars[m.group(1)]["query"] != r["type"]:
            fail("%s uses datasource %s, not a datasource variable of its type" % (what, r))
    ok("every datasource ref is a datasource variable of its type",
       "%d refs: %s" % (len(refs), " ".join(sorted({r["uid"] for _, r in refs}))))
    ids = [p["id"] for p in d["panels"]]
    check(len(ids) == len(set(ids)), "panel ids unique", len(ids))
    names = [x["name"] for x in d["templating"]["list"]]
    check(names == ["pg", "prom", "instance", "site", "zone", "camera", "event_type"], "variables",
          " ".join(names))
    for x in pg_variables(d):
        check(x["type"] == "query" and x["multi"] and x["includeAll"],
              "variable %s: PostgreSQL query, multi-value, with All" % x["name"], x["allValue"])
    inst = d["templating"]["list"][2]
    check(inst["datasource"]["type"] == "prometheus" and inst["multi"] and inst["includeAll"]
          and inst["allValue"] == ".*", "variable instance: Prometheus, multi-value, All = .*",
          inst["query"])
    for title, e in prom_exprs(d, raw=True):
        for sel in re.findall(r"\b(camjoin_[a-z0-9_]+)(\{[^}]*\})?", e):
            if 'instance=~"$instance"' not in sel[1]:
                fail("%s: %s is not filtered by $instance: %s" % (title, sel[0], e))
        for win in re.findall(r"\[([^\]]+)\]", e):
            if win != "$__rate_interval" and not win.endswith("h"):
                fail("%s: range [%s] where Grafana's $__rate_interval belongs: %s" % (title, win, e))
    ok("every Prometheus selector is filtered by $instance; rates use $__rate_interval",
       "%d expressions" % len(prom_exprs(d)))
    for title in ("Consumer lag by partition", "End-to-end latency", "Dead letters per hour by reason",
                  "Freshness", "Join hit rate"):
        p = next(p for p in d["panels"] if p["title"] == title)
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        check(len(steps) >= 2, "panel %s has thresholds" % title,
              " ".join("%s@%s" % (x["color"], x["value"]) for x in steps))
    ops = [p["title"] for p in d["panels"] if p["gridPos"]["y"] > d["panels"][row]["gridPos"]["y"]]
    check(d["panels"][row]["title"] == "Operations" and
          {"PostgreSQL", "Paused partitions", "Upkeep failures, last hour", "Commit duration"} <= set(ops),
          "an Operations row: PostgreSQL up, commit duration, paused partitions, upkeep failures",
          ", ".join(ops))
    # every $ in SQL is an allowed macro or ${var:sqlstring}
    for kind, name, sql in pg_queries(d):
        substitute(sql, {}, d)
    ok("SQL uses only grafana_sql.py's macros and ${var:sqlstring}",
       "%d queries" % len(list(pg_queries(d))))


def prom_exprs(d, raw=False):
    """(title, expr); unless raw, with Grafana's variables as Prometheus sees
    them at All: $__rate_interval a minute, $instance any."""
    out = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", []) if "expr" in t]
    if not raw:
        out = [(ti, e.replace("$__rate_interval", "1m").replace("$instance", ".*")) for ti, e in out]
    return out


def pg_variables(d):
    return [x for x in d["templating"]["list"]
            if x["type"] == "query" and x["datasource"]["type"] == PG_TYPE]


def cmd_dash_rules():
    """The Prometheus expressions as a recording-rules file, for promtool check rules."""
    rules = [{"record": "camjoin_dashboard:expr_%d" % i, "expr": e}
             for i, (_, e) in enumerate(prom_exprs(load_dash()))]
    print(yaml.safe_dump({"groups": [{"name": "camjoin_dashboard", "rules": rules}]}, sort_keys=False))


def cmd_dash_metrics():
    names = set()
    for _, e in prom_exprs(load_dash()):
        names |= set(re.findall(r"\b(camjoin_[a-z0-9_]+)\b", e))
    print("\n".join(sorted(names)))


def pg_queries(d):
    for x in pg_variables(d):
        yield "variable", x["name"], x["query"]
    for p in d["panels"]:
        for t in p.get("targets", []):
            if "rawSql" in t:
                yield "panel", p["title"], t["rawSql"]


def substitute(sql, values, d):
    """grafana_sql.substitute() over DASH_FROM .. DASH_TO; its errors fail."""
    frm, to = os.environ.get("DASH_FROM", "1970-01-01T00:00:00Z"), os.environ.get("DASH_TO", "1970-01-01T00:00:00Z")
    try:
        return grafana_sql.substitute(sql, values, d, frm, to)
    except ValueError as e:
        fail(str(e))


def parse_values(argv):
    vals = {}
    for a in argv:
        k, _, v = a.partition("=")
        vals[k] = v
    return vals


def cmd_dash_sql(kind, name, argv):
    d = load_dash()
    for k, n, sql in pg_queries(d):
        if k == kind and n == name:
            print(substitute(sql, parse_values(argv), d))
            return
    fail("no %s %r with SQL in the dashboard" % (kind, name))


def psql(sql):
    r = subprocess.run(["psql", "-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("query failed: %s\n%s" % (r.stderr.strip(), sql))
    rows = list(csv.reader(io.StringIO(r.stdout)))
    return rows[0] if rows else [], rows[1:]


def var_values(d, name, values):
    x = next(v for v in d["templating"]["list"] if v["name"] == name)
    head, rows = psql(substitute(x["query"], values, d))
    col = head.index("__value") if "__value" in head else 0
    return [r[col] for r in rows]


def cmd_dash_run_all(values_out):
    """Every PostgreSQL query of the dashboard, for: every variable at All;
    each variable alone at one value from its own query; and the chain
    site -> zone -> camera (each picked from its query given the previous).
    Each must succeed and return at least one row."""
    d = load_dash()
    picked = {}
    combos = [("all at All", {})]
    for x in pg_variables(d):
        vals = var_values(d, x["name"], {})
        if not vals:
            fail("variable %s: its query returns no value with every variable at All" % x["name"])
        picked[x["name"]] = vals[0]
        combos.append(("%s=%s" % (x["name"], vals[0]), {x["name"]: vals[0]}))
    chain = {"site": picked["site"]}
    for name in ("zone", "camera"):
        vals = var_values(d, name, chain)
        if not vals:
            fail("variable %s: no value for %s" % (name, chain))
        chain[name] = vals[0]
    combos.append(("chain " + " ".join("%s=%s" % kv for kv in chain.items()), chain))
    n = 0
    for label, values in combos:
        for kind, name, sql in pg_queries(d):
            head, rows = psql(substitute(sql, values, d))
            if not rows:
                fail("[%s] %s %r returned no row:\n%s" % (label, kind, name, substitute(sql, values, d)))
            n += 1
            ok("[%s] %s %s" % (label, kind, name[:32]), "%d rows" % len(rows))
    with open(values_out, "w") as f:
        json.dump({"single": picked, "chain": chain}, f)
    ok("dashboard SQL executed", "%d queries, %d variable settings" % (n, len(combos)))
