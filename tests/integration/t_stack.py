# t_stack.py — t_stack.sh's reader of docker-compose.yml, the Dockerfile, the
# Prometheus and Grafana files and the dashboard. Each command prints what
# the shell needs, or "  ok  ..." lines; a failed check exits 1 with
# "FAIL: ...". Environment: CAMJOIN_SRC, and DASH_FROM/DASH_TO (the time
# range, as Grafana writes it into SQL) for the dash-* commands, which live
# in stack_dash.py; the shared helpers in stack_common.py.
import json
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

from stack_common import (DASH, DEPLOY, PG_TYPE, PROV, SERVICES, SRC, check, datasources, fail,
                          load_yaml, ok, yaml_files)
from stack_dash import (cmd_dash_metrics, cmd_dash_rules, cmd_dash_run_all, cmd_dash_sql,
                        cmd_dash_static)


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

    # PostgreSQL: initialised with config/roles.sql by deploy/postgres/init.sh;
    # camjoin's URI is the writer role's, not the superuser's
    penv = s["postgres"]["environment"]
    pm = mounts(s["postgres"])
    for target, src in (("/docker-entrypoint-initdb.d/10-camjoin.sh", "deploy/postgres/init.sh"),
                        ("/camjoin-sql/roles.sql", "config/roles.sql"),
                        ("/camjoin-sql/schema.sql", "config/schema.sql")):
        check(os.path.realpath(pm.get(target, "")) == os.path.realpath(os.path.join(SRC, src)),
              "postgres mounts %s at %s" % (src, target), pm.get(target))
    check(os.access(os.path.join(SRC, "deploy/postgres/init.sh"), os.X_OK),
          "deploy/postgres/init.sh is executable (the image runs it, not sources it)")
    u = urlsplit(cenv["CAMJOIN_PG"])
    got = (u.hostname, u.port, u.username, u.password, u.path.lstrip("/"))
    want = ("postgres", 5432, "camjoin", penv["CAMJOIN_PASSWORD"], penv["POSTGRES_DB"])
    check(got == want, "CAMJOIN_PG = the postgres service, as the writer role camjoin",
          "%s@%s:%s/%s" % (u.username, u.hostname, u.port, want[4]))
    check(penv["POSTGRES_USER"] not in ("camjoin", "camjoin_reader"),
          "the superuser is not a role camjoin or Grafana logs in as", penv["POSTGRES_USER"])
    check(s["camjoin"].get("stop_grace_period") == "30s",
          "camjoin's stop_grace_period 30s (the flush on SIGTERM)",
          s["camjoin"].get("stop_grace_period"))

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
    want = ("postgres:5432", "camjoin_reader", penv["CAMJOIN_READER_PASSWORD"], penv["POSTGRES_DB"],
            "disable")
    check(got == want, "PostgreSQL datasource = the postgres service, as the reader role",
          "%s user=%s db=%s sslmode=%s" % (got[0], got[1], got[3], got[4]))
    prom = [d for d in ds.values() if d["type"] == "prometheus"]
    check([d.get("url") for d in prom] == ["http://prometheus:9090"], "Prometheus datasource url",
          [d.get("url") for d in prom])
    check(9090 in published(s["prometheus"]), "prometheus publishes 9090")


def cmd_compose_get(path, what):
    s = compose(path)
    if what == "camjoin-env":
        for k, v in sorted(s["camjoin"].get("environment", {}).items()):
            print("%s=%s" % (k, v))
    elif what == "postgres-env":
        for k, v in sorted(s["postgres"].get("environment", {}).items()):
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
