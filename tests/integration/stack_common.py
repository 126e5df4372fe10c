# stack_common.py — what t_stack.py and stack_dash.py share: the paths of
# the stack's files, the "  ok" / "FAIL:" output, and the provisioned
# Grafana data sources. Environment: CAMJOIN_SRC.
import json
import os
import sys

import yaml

SRC = os.environ["CAMJOIN_SRC"]
DEPLOY = os.path.join(SRC, "deploy")
DASH = os.path.join(DEPLOY, "grafana/dashboards/camjoin.json")
PROV = os.path.join(DEPLOY, "grafana/provisioning")
PG_TYPE = "grafana-postgresql-datasource"
SERVICES = {"kafka", "kafka-init", "postgres", "camjoin", "gen", "prometheus", "grafana"}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def ok(name, value=""):
    print("  ok  %-58s %s" % (name, value))


def check(cond, name, value=""):
    if not cond:
        fail("%s (%s)" % (name, value))
    ok(name, value)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_dash():
    with open(DASH) as f:
        return json.load(f)


def yaml_files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".yml", ".yaml")))


def datasources():
    out = {}
    for f in yaml_files(os.path.join(PROV, "datasources")):
        doc = load_yaml(f)
        if doc.get("apiVersion") != 1:
            fail("%s: apiVersion is not 1" % f)
        for d in doc.get("datasources", []):
            if d["uid"] in out:
                fail("datasource uid %s defined twice" % d["uid"])
            out[d["uid"]] = d
    return out
