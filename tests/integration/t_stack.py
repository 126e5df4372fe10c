# t_stack.py — t_stack.sh's reader of docker-compose.yml, the Dockerfile, the
# Prometheus and Grafana files and the dashboard. Each command prints what
# the shell needs, or "  ok  ..." lines; a failed check exits 1 with
# "FAIL: ...". Environment: CAMJOIN_SRC, and DASH_FROM/DASH_TO (the time
# range, as Grafana writes it into SQL) for the dash-* commands.
import copy
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import jsonschema
import yaml

import grafana_sql  # beside this file

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


# ------------------------------------------------------------ compose
def compose(path):
    return load_yaml(path)["services"]


def unescape(s):  # `docker-compose config` writes a literal $ as $$
    return s.replace("$$", "$")


def flag(args, name):
    """Value of --name VALUE in an argv list (the last one wins, as in camjoin)."""
    val = None
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            val = args[i + 1]
        elif a.startswith(name + "="):
            val = a[len(name) + 1:]
    return val


def image_pinned(image):
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" in last:
        return True
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def mounts(svc):
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out[v["target"]] = v.get("source", "")
        else:
            parts = v.split(":")
            out[parts[1]] = parts[0]
    return out


def published(svc):
    out = {}
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out[int(p["target"])] = str(p.get("published"))
        else:
            parts = p.split("/")[0].split(":")
            out[int(parts[-1])] = ":".join(parts[:-1])
    return out


def camjoin_http_port(s):
    listen = flag(s["camjoin"].get("command", []), "--http")
    if listen is None:
        fail("the camjoin service has no --http flag: Prometheus could not scrape it")
    return int(listen.rsplit(":", 1)[-1])


def cmd_compose_check(path):
    s = compose(path)
    check(set(s) == SERVICES, "compose services", " ".join(sorted(s)))
    for name in sorted(s):
        img = s[name].get("image", "")
        check(img and image_pinned(img), "image of %s pinned (tag, not latest)" % name, img)
    for name in ("camjoin", "gen"):
        ctx = s[name].get("build", {})
        ctx = ctx.get("context") if isinstance(ctx, dict) else ctx
        check(os.path.realpath(ctx or "") == os.path.realpath(SRC),
              "%s is built from the repository's Dockerfile" % name, ctx)
    check(s["camjoin"]["image"] == s["gen"]["image"], "camjoin and gen share one image",
          s["camjoin"]["image"])

    # Kafka: listener, topic
    kenv = s["kafka"]["environment"]
    adv = dict(l.split("://", 1)[::-1] for l in kenv["KAFKA_ADVERTISED_LISTENERS"].split(","))
    inside = [hp for hp, name in adv.items() if name == "PLAINTEXT"]
    check(inside == ["kafka:9092"], "Kafka advertises kafka:9092 inside the network", inside)
    init = s["kafka-init"].get("entrypoint", []) + s["kafka-init"].get("command", [])
    cenv = s["camjoin"]["environment"]
    gen = [unescape(a) for a in s["gen"].get("command", [])]
    brokers = {cenv.get("CAMJOIN_BROKERS"), flag(gen, "--brokers"), flag(init, "--bootstrap-server")}
    check(brokers == {"kafka:9092"}, "camjoin, gen and kafka-init use kafka:9092", brokers)
    topics = {cenv.get("CAMJOIN_TOPIC", "camera-events"), flag(gen, "--topic"), flag(init, "--topic")}
    check(len(topics) == 1, "one topic for camjoin, gen and kafka-init", topics)
    check(int(flag(init, "--partitions")) >= 1, "kafka-init partitions", flag(init, "--partitions"))

    # dependencies
    def cond(a, b):
        return s[a].get("depends_on", {}).get(b, {}).get("condition")
    check(cond("kafka-init", "kafka") == "service_healthy", "kafka-init waits for kafka healthy")
    check(cond("camjoin", "postgres") == "service_healthy", "camjoin waits for postgres healthy")
    check(cond("camjoin", "kafka-init") == "service_completed_successfully",
          "camjoin waits for the topic (kafka-init completed)")
    check(cond("gen", "kafka-init") == "service_completed_successfully",
          "gen waits for the topic (kafka-init completed)")

    # PostgreSQL credentials: camjoin's URI = the postgres service
    penv = s["postgres"]["environment"]
    u = urlsplit(cenv["CAMJOIN_PG"])
    got = (u.hostname, u.port, u.username, u.password, u.path.lstrip("/"))
    want = ("postgres", 5432, penv["POSTGRES_USER"], penv["POSTGRES_PASSWORD"], penv["POSTGRES_DB"])
    check(got == want, "CAMJOIN_PG = the postgres service's host, user, password, db",
          "%s@%s:%s/%s" % (u.username, u.hostname, u.port, want[4]))

    # Prometheus scrapes camjoin's --http port
    port = camjoin_http_port(s)
    check(port in published(s["camjoin"]), "camjoin publishes its --http port", port)
    prom_cfg_mount = mounts(s["prometheus"]).get("/etc/prometheus/prometheus.yml", "")
    check(os.path.realpath(prom_cfg_mount) == os.path.join(os.path.realpath(DEPLOY), "prometheus/prometheus.yml"),
          "prometheus mounts deploy/prometheus/prometheus.yml", prom_cfg_mount)
    check(flag(s["prometheus"].get("command", []), "--config.file") == "/etc/prometheus/prometheus.yml",
          "prometheus --config.file is the mounted file")
    pcfg = load_yaml(os.path.join(DEPLOY, "prometheus/prometheus.yml"))
    jobs = {j["job_name"]: j for j in pcfg["scrape_configs"]}
    targets = [t for sc in jobs["camjoin"]["static_configs"] for t in sc["targets"]]
    check(targets == ["camjoin:%d" % port], "Prometheus target = camjoin:<--http port>", targets)
    check(jobs["camjoin"].get("scrape_interval") == "5s", "camjoin scraped every 5s")
    check(jobs["camjoin"].get("metrics_path", "/metrics") == "/metrics", "scrape path /metrics")

    # Grafana: mounts, provider path, home dashboard, datasources
    g = s["grafana"]
    gm = mounts(g)
    check(os.path.realpath(gm.get("/etc/grafana/provisioning", "")) == os.path.realpath(PROV),
          "grafana mounts deploy/grafana/provisioning")
    dash_dir = [t for t, src in gm.items()
                if os.path.realpath(src) == os.path.realpath(os.path.dirname(DASH))]
    check(len(dash_dir) == 1, "grafana mounts deploy/grafana/dashboards", dash_dir)
    provs = [p for f in yaml_files(os.path.join(PROV, "dashboards"))
             for p in load_yaml(f).get("providers", [])]
    check([p["options"]["path"] for p in provs] == dash_dir, "dashboard provider path = that mount",
          dash_dir[0])
    genv = g["environment"]
    home = genv.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    check(home == dash_dir[0] + "/" + os.path.basename(DASH), "home dashboard is camjoin.json", home)
    check(str(genv.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() == "true"
          and genv.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous access is Viewer only")
    check((genv.get("GF_SECURITY_ADMIN_USER"), genv.get("GF_SECURITY_ADMIN_PASSWORD")) == ("admin", "admin"),
          "Grafana admin/admin (README)")
    ds = datasources()
    pg = [d for d in ds.values() if d["type"] == PG_TYPE]
    check(len(pg) == 1, "one PostgreSQL datasource", [d["uid"] for d in pg])
    pg = pg[0]
    jd = pg.get("jsonData", {})
    got = (pg.get("url"), pg.get("user"), pg.get("secureJsonData", {}).get("password"),
           jd.get("database"), jd.get("sslmode"))
    want = ("postgres:5432", penv["POSTGRES_USER"], penv["POSTGRES_PASSWORD"], penv["POSTGRES_DB"], "disable")
    check(got == want, "PostgreSQL datasource = the postgres service",
          "%s user=%s db=%s sslmode=%s" % (got[0], got[1], got[3], got[4]))
    prom = [d for d in ds.values() if d["type"] == "prometheus"]
    check([d.get("url") for d in prom] == ["http://prometheus:9090"], "Prometheus datasource url",
          [d.get("url") for d in prom])
    check(9090 in published(s["prometheus"]), "prometheus publishes 9090")


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


def cmd_compose_get(path, what):
    s = compose(path)
    if what == "camjoin-env":
        for k, v in sorted(s["camjoin"].get("environment", {}).items()):
            print("%s=%s" % (k, v))
    elif what == "camjoin-args":
        print("\n".join(s["camjoin"].get("command", [])))
    elif what == "gen-argv":  # entrypoint + command, as the container runs them
        print("\n".join(unescape(a) for a in s["gen"].get("entrypoint", []) + s["gen"].get("command", [])))
    elif what == "topic":
        print(flag(s["kafka-init"].get("command", []), "--topic"))
    elif what == "partitions":
        print(flag(s["kafka-init"].get("command", []), "--partitions"))
    elif what == "http-port":
        print(camjoin_http_port(s))
    else:
        fail("compose-get: unknown item " + what)


def cmd_print_config_check(args_file, out_file):
    """Every --set KEY=VALUE of the compose command shows in --print-config."""
    with open(args_file) as f:
        args = f.read().split("\n")
    with open(out_file) as f:
        section, cfg = None, {}
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                cfg["%s.%s" % (section, k.strip())] = v.strip()
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    for kv in sets:
        k, v = kv.split("=", 1)
        check(cfg.get(k) == v, "--print-config shows --set " + kv, cfg.get(k))
    listen = flag(args, "--http")
    check(cfg.get("http.listen") == listen, "--print-config http.listen", cfg.get("http.listen"))


# ------------------------------------------------------------ Dockerfile
def dockerfile():
    """[(stage_index, INSTRUCTION, argument)] with continuation lines joined."""
    out, cur, stage = [], "", -1
    with open(os.path.join(SRC, "Dockerfile")) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            ins, _, arg = cur.strip().partition(" ")
            ins = ins.upper()
            if ins == "FROM":
                stage += 1
            out.append((stage, ins, arg.strip()))
            cur = ""
    return out


def apt_packages(stage):
    pkgs = []
    for st, ins, arg in dockerfile():
        if st == stage and ins == "RUN" and "apt-get install" in arg:
            tail = arg.split("apt-get install", 1)[1].split("&&")[0]
            pkgs += [w for w in tail.split() if not w.startswith("-")]
    return pkgs


def ci_packages():
    with open(os.path.join(SRC, ".ci/run")) as f:
        m = re.search(r'^PACKAGES="([^"]*)"', f.read(), re.M)
    return m.group(1).split()


def cmd_dockerfile_check():
    d = dockerfile()
    froms = [a for _, i, a in d if i == "FROM"]
    check(len(froms) == 2, "two stages", froms)
    for a in froms:
        img = a.split()[0]
        check(image_pinned(img) and img.startswith("debian:bookworm"), "FROM pinned, Debian 12", img)
    check(froms[0].split()[-1] == "build" and froms[0].split()[1].upper() == "AS", "first stage is 'build'")
    build = apt_packages(0)
    ci = set(ci_packages())
    check(build and set(build) <= ci, "build packages are in .ci/run's PACKAGES", " ".join(build))
    runtime = apt_packages(1)
    check(not [p for p in runtime if p.endswith("-dev")], "no -dev package at runtime", " ".join(runtime))
    for p in build + runtime:
        pol = subprocess.run(["apt-cache", "policy", p], capture_output=True, text=True).stdout
        m = re.search(r"Candidate: (\S+)", pol)
        if not m or m.group(1) == "(none)":
            fail("package %s has no candidate in this machine's Debian 12 archive" % p)
    ok("every package exists in Debian 12 (apt-cache policy)", "%d packages" % len(build + runtime))
    final = [(i, a) for st, i, a in d if st == 1]
    user = [a for i, a in final if i == "USER"]
    check(user and user[-1].split(":")[0] == "10001", "runs as uid 10001", user)
    ep = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    check(ep == [["camjoin"]], "ENTRYPOINT [\"camjoin\"]", ep)
    expose = [a for i, a in final if i == "EXPOSE"]
    envs = dict(a.split("=", 1) for i, a in final if i == "ENV")
    check(expose == [envs.get("CAMJOIN_HEALTH_PORT")], "EXPOSE = CAMJOIN_HEALTH_PORT", expose)
    cmd = [json.loads(a) for i, a in final if i == "CMD"]
    check(cmd and flag(cmd[-1], "--http").endswith(":" + expose[0]), "default CMD --http on the exposed port",
          cmd)
    # the same tree as the build context: .dockerignore keeps build*/ and .git out
    with open(os.path.join(SRC, ".dockerignore")) as f:
        ign = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    check({"build*/", ".git"} <= ign, ".dockerignore excludes build*/ and .git", sorted(ign))


def cmd_dockerfile_get(what, tmp=None):
    d = dockerfile()
    if what == "build-cmd":  # the build stage's cmake RUN, /src /build /staging mapped
        runs = [a for st, i, a in d if st == 0 and i == "RUN" and "cmake -S" in a]
        if len(runs) != 1:
            fail("expected one cmake RUN in the build stage, found %d" % len(runs))
        cmd = runs[0]
        mapping = {"src": SRC, "build": tmp + "/build", "staging": tmp + "/staging"}
        cmd = re.sub(r"(?<![\w/.-])/(src|build|staging)(?![\w-])", lambda m: mapping[m.group(1)], cmd)
        print(cmd)
    elif what == "copies":  # COPY --from=build SOURCES... DEST, one source a line
        for st, i, a in d:
            if i == "COPY" and a.startswith("--from=build"):
                for src in a.split()[1:-1]:
                    print(src)
    elif what == "runtime-packages":
        print("\n".join(apt_packages(1)))
    elif what == "healthcheck":
        hc = [a for st, i, a in d if i == "HEALTHCHECK"]
        if len(hc) != 1 or " CMD " not in " " + hc[0]:
            fail("expected one HEALTHCHECK ... CMD [...]")
        print("\n".join(json.loads(hc[0].split("CMD", 1)[1].strip())))
    else:
        fail("dockerfile-get: unknown item " + what)


def lib_package(soname):
    """The Debian package that holds the x86-64/aarch64 library SONAME."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    for line in subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout.splitlines():
        parts = line.strip().split(" => ")
        if len(parts) == 2 and parts[0].split()[0] == soname:
            for path in (parts[1], os.path.realpath(parts[1])):
                r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
                if r.returncode == 0:
                    return r.stdout.split(":")[0]
    fail("no installed package holds %s" % soname)


def cmd_dockerfile_libs(tmp):
    """Every shared library the copied binaries load directly (NEEDED) comes
    from a package the runtime stage installs, or from libc6 (in every
    Debian image)."""
    runtime = set(apt_packages(1)) | {"libc6"}
    staged = os.path.join(tmp, "staging")
    for st, i, a in dockerfile():
        if i != "COPY" or not a.startswith("--from=build"):
            continue
        for src in a.split()[1:-1]:
            path = staged + src[len("/staging"):]
            if not os.path.exists(path):
                fail("COPY --from=build %s: not in the staged install (%s)" % (src, path))
            if not os.path.isfile(path) or not src.startswith("/staging/usr/bin/"):
                ok("COPY --from=build source exists", src)
                continue
            dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
            needed = re.findall(r"\(NEEDED\).*\[(.+)\]", dyn)
            if not needed:
                fail("%s: no NEEDED entries (readelf)" % path)
            pkgs = {n: lib_package(n) for n in needed}
            missing = sorted("%s (%s)" % (n, p) for n, p in pkgs.items() if p not in runtime)
            if missing:
                fail("%s needs %s, not installed by the runtime stage" % (src, ", ".join(missing)))
            ok("COPY %s: every NEEDED library is installed" % os.path.basename(src),
               " ".join(sorted(set(pkgs.values()))))


# ------------------------------------------------------------ dashboard
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

    pgp = next(i for i, p in enumerate(d["panels"]) if p["datasource"]["type"] == PG_TYPE)
    prp = next(i for i, p in enumerate(d["panels"]) if p["datasource"]["type"] == "prometheus")
    rejected("a panel without datasource", lambda x: x["panels"][pgp].pop("datasource"))
    rejected("a panel without targets", lambda x: x["panels"][pgp].pop("targets"))
    rejected("a panel with no target", lambda x: x["panels"][prp].update(targets=[]))
    rejected("a SQL target without rawSql", lambda x: x["panels"][pgp]["targets"][0].pop("rawSql"))
    rejected("a Prometheus target without expr", lambda x: x["panels"][prp]["targets"][0].pop("expr"))
    rejected("a target without datasource", lambda x: x["panels"][prp]["targets"][0].pop("datasource"))
    rejected("a variable without datasource", lambda x: x["templating"]["list"][0].pop("datasource"))
    rejected("an All option without allValue", lambda x: x["templating"]["list"][0].pop("allValue"))
    rejected("a dashboard without uid", lambda x: x.pop("uid"))

    ds = datasources()
    refs = [("panel " + p["title"], p["datasource"]) for p in d["panels"]]
    refs += [("target of " + p["title"], t["datasource"]) for p in d["panels"] for t in p["targets"]]
    refs += [("variable " + x["name"], x["datasource"]) for x in d["templating"]["list"]]
    for what, r in refs:
        if r["uid"] not in ds or ds[r["uid"]]["type"] != r["type"]:
            fail("%s uses datasource %s, which deploy/grafana/provisioning does not define" % (what, r))
    ok("every datasource ref is provisioned (uid and type)",
       "%d refs: %s" % (len(refs), " ".join(sorted({r["uid"] for _, r in refs}))))
    ids = [p["id"] for p in d["panels"]]
    check(len(ids) == len(set(ids)), "panel ids unique", len(ids))
    names = [x["name"] for x in d["templating"]["list"]]
    check(names == ["site", "zone", "camera", "event_type"], "variables", " ".join(names))
    for x in d["templating"]["list"]:
        check(x["type"] == "query" and x["datasource"]["type"] == PG_TYPE and x["multi"] and x["includeAll"],
              "variable %s: PostgreSQL query, multi-value, with All" % x["name"], x["allValue"])
    # every $ in SQL is an allowed macro or ${var:sqlstring}
    for kind, name, sql in pg_queries(d):
        substitute(sql, {}, d)
    ok("SQL uses only grafana_sql.py's macros and ${var:sqlstring}",
       "%d queries" % len(list(pg_queries(d))))


def prom_exprs(d):
    return [(p["title"], t["expr"]) for p in d["panels"] for t in p["targets"] if "expr" in t]


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
    for x in d["templating"]["list"]:
        if x["datasource"]["type"] == PG_TYPE:
            yield "variable", x["name"], x["query"]
    for p in d["panels"]:
        for t in p["targets"]:
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
    for x in d["templating"]["list"]:
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


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    table = {
        "compose-check": cmd_compose_check, "compose-get": cmd_compose_get,
        "print-config-check": cmd_print_config_check,
        "dockerfile-check": cmd_dockerfile_check, "dockerfile-get": cmd_dockerfile_get,
        "dockerfile-libs": cmd_dockerfile_libs,
        "dash-static": cmd_dash_static, "dash-rules": cmd_dash_rules, "dash-metrics": cmd_dash_metrics,
        "dash-run-all": cmd_dash_run_all,
    }
    if cmd == "dash-sql":
        cmd_dash_sql(args[0], args[1], args[2:])
    elif cmd in table:
        table[cmd](*args)
    else:
        fail("t_stack.py: unknown command " + cmd)


main()
