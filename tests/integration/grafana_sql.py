"""grafana_sql - Grafana's interpolation of the shipped dashboard's
PostgreSQL queries, for the tools that run them outside Grafana:
tests/integration/t_stack.py (every query runs and returns rows) and
bench/dashboard.py (every query timed at 10M rows).

substitute(sql, values, dashboard, frm, to) expands $__timeFilter(col) to
`col BETWEEN 'frm' AND 'to'`, $__timeFrom() and $__timeTo() to the bounds as
string literals, $__unixEpochFrom() and $__unixEpochTo() to them as Unix
seconds (frm and to are ISO 8601 instants), and ${var:sqlstring} to the value in `values` as a quoted
literal, or, for a variable absent from `values` (All), the variable's
allValue unformatted, as Grafana inserts a custom all value. Anything else
left with a $ (another macro, another format, an unknown variable) raises
ValueError naming it: a new macro must be added here, for both tools.
"""
import datetime
import re


def substitute(sql, values, dashboard, frm, to):
    variables = {x["name"]: x for x in dashboard["templating"]["list"]}
    for macro, instant in (("$__unixEpochFrom()", frm), ("$__unixEpochTo()", to)):
        sql = sql.replace(macro, str(int(datetime.datetime.fromisoformat(instant).timestamp())))
    sql = re.sub(r"\$__timeFilter\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)",
                 lambda m: "%s BETWEEN '%s' AND '%s'" % (m.group(1), frm, to), sql)
    sql = sql.replace("$__timeFrom()", "'%s'" % frm).replace("$__timeTo()", "'%s'" % to)

    def var(m):
        name, fmt = m.group(1), m.group(2)
        if name not in variables:
            raise ValueError("SQL uses ${%s:%s}, not a dashboard variable" % (name, fmt))
        if fmt != "sqlstring":
            raise ValueError("SQL uses ${%s:%s}: only the sqlstring format is allowed" % (name, fmt))
        if name not in values:
            return variables[name]["allValue"]
        return "'%s'" % values[name].replace("'", "''")

    sql = re.sub(r"\$\{(\w+):(\w+)\}", var, sql)
    left = re.search(r"\$\w*(\(\))?|\[\[", sql)
    if left:
        raise ValueError("unsupported macro or variable syntax %r in: %s" % (left.group(0), sql))
    return sql.strip().rstrip(";")
