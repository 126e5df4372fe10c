#!/usr/bin/env python3
"""camjoin's Python peer for the benchmark (issue 13): "what a team writes in
an afternoon" to do camjoin's job.

It consumes camera events from Kafka (confluent-kafka), parses and validates
each JSON message (the malformed ones go to camjoin_dead_letters with a
reason), drops a repeated event_id seen within a time window (an in-memory
dict; the primary key's ON CONFLICT DO NOTHING catches the rest), joins each
event to the camera CSV (a dict), and writes every batch in ONE PostgreSQL
transaction (psycopg 3): COPY into a temporary staging table, INSERT ...
SELECT ... ON CONFLICT DO NOTHING into camjoin's camera_events, the dead
letters, and the next Kafka offset of each partition into camjoin_offsets.
At assignment it reads its offsets from camjoin_offsets (none: the start of
the partition); it never commits offsets to Kafka.

The tables are camjoin's (config/schema.sql): create them first.

Run (bench/peers/python/run.sh does all of this on a throwaway cluster):

    peer.py --brokers HOST:PORT --topic T --group G --pg postgresql://... \
            --cameras config/cameras.csv [--until-end] [--latency]

--until-end stops once every partition's offset in PostgreSQL has reached
the end it had when the partition was assigned (camjoin's --until-end);
without it the peer runs live until SIGTERM or SIGINT, then commits what it
holds and stops. On exit it prints one JSON line of figures on stdout.
"""

import argparse
import csv
import json
import re
import resource
import signal
import sys
import time
from array import array
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

try:
    import psycopg
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
except ImportError as e:  # run outside the venv that run.sh makes
    sys.exit(f"peer.py: {e} (install bench/peers/python/requirements.txt, or use run.sh)")

COLS = ("event_id, event_ts, camera_id, event_type, confidence, object_count, attributes, "
        "site_id, site_name, zone, latitude, longitude, kafka_partition, kafka_offset")
KNOWN = frozenset(("event_id", "camera_id", "event_ts", "event_type", "confidence", "object_count"))
MAX_BYTES = 1 << 20                  # camjoin's event.max_message_bytes
INT32_MAX = 2 ** 31 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TS_MAX_MS = 253402300799999          # 9999-12-31T23:59:59.999Z
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")


def log(msg):
    print(f"peer.py: {msg}", file=sys.stderr, flush=True)


class Invalid(Exception):
    """A malformed message; str() is its dead-letter reason."""


def _pairs(pairs):  # JSON objects: a repeated key is malformed (as in camjoin)
    d = {}
    for k, v in pairs:
        if k in d:
            raise Invalid("duplicate_key")
        d[k] = v
    return d


def _constant(name):  # NaN, Infinity: not JSON
    raise Invalid("invalid_json")


_decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant)


def _string(obj, name, max_bytes):
    v = obj.get(name)
    if v is None:
        raise Invalid(f"missing_field:{name}")
    if not isinstance(v, str):
        raise Invalid(f"bad_type:{name}")
    if not v or (len(v) * 4 > max_bytes and len(v.encode()) > max_bytes):
        raise Invalid(f"bad_value:{name}")
    return v


def _timestamp(obj):
    v = obj.get("event_ts")
    if v is None:
        raise Invalid("missing_field:event_ts")
    if isinstance(v, str):
        if not RFC3339.match(v):
            raise Invalid("bad_value:event_ts")
        try:
            return datetime.fromisoformat(v.upper())
        except ValueError:
            raise Invalid("bad_value:event_ts") from None
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid("bad_type:event_ts")
    if not 0 <= v <= TS_MAX_MS:
        raise Invalid("bad_value:event_ts")
    return EPOCH + timedelta(milliseconds=v)


def parse(value):
    """Kafka message value -> the event's fields, or raises Invalid(reason)."""
    if not value:
        raise Invalid("empty")
    if len(value) > MAX_BYTES:
        raise Invalid("too_large")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("invalid_utf8") from None
    if "\\u0000" in text:
        raise Invalid("nul_character")
    try:
        obj = _decoder.decode(text)
    except ValueError:
        raise Invalid("invalid_json") from None
    except RecursionError:
        raise Invalid("too_deep") from None
    if not isinstance(obj, dict):
        raise Invalid("not_object")
    event_id = _string(obj, "event_id", 128)
    camera_id = _string(obj, "camera_id", 128)
    event_ts = _timestamp(obj)
    event_type = _string(obj, "event_type", 64)
    confidence = obj.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise Invalid("bad_type:confidence")
        if not 0.0 <= confidence <= 1.0:
            raise Invalid("bad_value:confidence")
    count = obj.get("object_count")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int):
            raise Invalid("bad_type:object_count")
        if not 0 <= count <= INT32_MAX:
            raise Invalid("bad_value:object_count")
    extra = {k: v for k, v in obj.items() if k not in KNOWN}
    attributes = json.dumps(extra, separators=(",", ":"), ensure_ascii=False) if extra else None
    return event_id, event_ts, camera_id, event_type, confidence, count, attributes


def load_cameras(path):
    """camera_id -> (site_id, site_name, zone, latitude, longitude)."""
    cams = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            def num(s):
                return float(s) if s.strip() else None
            cams[row["camera_id"]] = (row["site_id"], row["site_name"], row["zone"],
                                      num(row["latitude"]), num(row["longitude"]))
    return cams


class Peer:
    def __init__(self, args):
        self.args = args
        try:
            self.cams = load_cameras(args.cameras)
        except (OSError, KeyError, ValueError) as e:
            sys.exit(f"peer.py: --cameras {args.cameras}: {e!r}")
        self.miss = (None,) * 5
        self.seen = OrderedDict()         # event_id -> first seen (monotonic s)
        self.rows, self.dead, self.lat = [], [], []
        self.next = {}                    # partition -> next offset, this batch
        self.committed = {}               # partition -> next offset in PostgreSQL
        self.high = {}                    # partition -> end at assignment (--until-end)
        self.assigned = False
        self.batch_t0 = None
        self.running = True
        self.st = dict(consumed=0, inserted=0, duplicates=0, pk_conflicts=0, dead_letters=0,
                       join_misses=0, batches=0)
        self.first_ms = self.last_commit_ms = None
        self.samples = array("f") if args.latency else None
        try:
            self.db = psycopg.connect(args.pg, application_name="camjoin-peer-python")
        except psycopg.Error as e:
            sys.exit(f"peer.py: cannot connect to PostgreSQL: {e}")
        with self.db.cursor() as cur:
            cur.execute("SELECT to_regclass('camera_events') IS NOT NULL"
                        " AND to_regclass('camjoin_offsets') IS NOT NULL"
                        " AND to_regclass('camjoin_dead_letters') IS NOT NULL")
            if not cur.fetchone()[0]:
                sys.exit("peer.py: camjoin's tables are missing (apply config/schema.sql first)")
            cur.execute("CREATE TEMP TABLE peer_staging (LIKE camera_events INCLUDING DEFAULTS)"
                        " ON COMMIT DELETE ROWS")
        self.db.commit()
        conf = {"bootstrap.servers": args.brokers, "group.id": args.group,
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500}
        for kv in args.X:
            k, sep, v = kv.partition("=")
            if not sep:
                sys.exit(f"peer.py: -X {kv}: expected KEY=VALUE")
            conf[k] = v
        self.consumer = Consumer(conf)

    # ---- assignment: the offsets come from PostgreSQL
    def on_assign(self, consumer, parts):
        with self.db.cursor() as cur:
            cur.execute("SELECT kafka_partition, next_offset FROM camjoin_offsets"
                        " WHERE consumer_group = %s AND topic = %s",
                        (self.args.group, self.args.topic))
            stored = dict(cur.fetchall())
        self.db.commit()
        for tp in parts:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
            self.committed[tp.partition] = stored.get(tp.partition, 0)
        consumer.assign(parts)
        self.assigned = True
        self.high = {}
        log(f"assigned {len(parts)} partitions")

    def on_revoke(self, consumer, parts):
        self.flush()  # what it holds is committed before another member takes over
        self.committed.clear()
        self.high = {}
        self.assigned = False

    def on_lost(self, consumer, parts):  # the batch is dropped: Kafka sends it again
        for r in self.rows:
            self.seen.pop(r[0], None)
        self.rows, self.dead, self.lat, self.next = [], [], [], {}
        self.batch_t0 = None
        self.committed.clear()
        self.assigned = False

    # ---- one message
    def handle(self, m):
        err = m.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            if err.fatal():
                raise KafkaException(err)
            log(f"kafka: {err}")
            return
        if self.first_ms is None:
            self.first_ms = time.time() * 1000
        if self.batch_t0 is None:
            self.batch_t0 = time.monotonic()
        self.st["consumed"] += 1
        part, off = m.partition(), m.offset()
        self.next[part] = off + 1
        if self.samples is not None:
            self.lat.append(m.timestamp()[1])
        value = m.value()
        try:
            ev = parse(value)
        except Invalid as e:
            self.dead.append((self.args.topic, part, off, value, str(e)))
            return
        now = time.monotonic()
        if ev[0] in self.seen:
            self.st["duplicates"] += 1
            return
        self.seen[ev[0]] = now
        site = self.cams.get(ev[2])
        if site is None:
            site = self.miss
            self.st["join_misses"] += 1
        self.rows.append(ev + site + (part, off))

    # ---- one batch, one transaction
    def flush(self):
        if not self.next:
            return
        t0 = t_copied = time.monotonic()
        with self.db.transaction(), self.db.cursor() as cur:
            if self.rows:
                with cur.copy(f"COPY peer_staging ({COLS}) FROM STDIN") as cp:
                    for r in self.rows:
                        cp.write_row(r)
                cur.execute(f"INSERT INTO camera_events ({COLS}) SELECT {COLS} FROM peer_staging"
                            " ON CONFLICT DO NOTHING")
                t_copied = time.monotonic()
                self.st["inserted"] += cur.rowcount
                self.st["pk_conflicts"] += len(self.rows) - cur.rowcount
            if self.dead:
                cur.executemany("INSERT INTO camjoin_dead_letters (topic, kafka_partition,"
                                " kafka_offset, payload, reason) VALUES (%s, %s, %s, %s, %s)"
                                " ON CONFLICT DO NOTHING", self.dead)
                self.st["dead_letters"] += len(self.dead)
            cur.executemany("INSERT INTO camjoin_offsets (consumer_group, topic, kafka_partition,"
                            " next_offset) VALUES (%s, %s, %s, %s)"
                            " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"
                            " SET next_offset = excluded.next_offset, updated_at = now()",
                            [(self.args.group, self.args.topic, p, o) for p, o in self.next.items()])
        t_done = time.monotonic()
        now_ms = time.time() * 1000
        self.last_commit_ms = now_ms
        if self.samples is not None:
            self.samples.extend(now_ms - t for t in self.lat)
        if self.args.verbose:
            log(f"batch: {len(self.rows)} rows, {len(self.dead)} dead letters, opened"
                f" {t0 - self.batch_t0:.3f} s before, written in {t_done - t0:.3f} s"
                f" (COPY + INSERT {t_copied - t0:.3f} s)")
        self.committed.update(self.next)
        self.st["batches"] += 1
        self.rows, self.dead, self.lat, self.next = [], [], [], {}
        self.batch_t0 = None

    def expire(self):  # the dedup window, oldest first
        limit = time.monotonic() - self.args.dedup_window
        seen = self.seen
        while seen:
            k = next(iter(seen))
            if seen[k] >= limit:
                break
            seen.popitem(last=False)

    def at_end(self):
        if not self.assigned:
            return False
        if not self.high:  # the ends as at assignment
            for tp in self.consumer.assignment():
                _, self.high[tp.partition] = self.consumer.get_watermark_offsets(
                    tp, timeout=10, cached=False)
        return all(self.committed.get(p, 0) >= h for p, h in self.high.items())

    def run(self):
        a = self.args
        self.consumer.subscribe([a.topic], on_assign=self.on_assign,
                                on_revoke=self.on_revoke, on_lost=self.on_lost)
        linger = a.batch_ms / 1000
        last_expire = time.monotonic()
        try:
            while self.running:
                room = a.batch_rows - len(self.rows) - len(self.dead)
                wait = linger if self.batch_t0 is None else \
                    max(0.0, self.batch_t0 + linger - time.monotonic())
                tc = time.monotonic()
                msgs = self.consumer.consume(num_messages=max(1, min(room, 10000)),
                                             timeout=max(wait, 0.001))
                if a.verbose:
                    log(f"consume: {len(msgs)} messages in {time.monotonic() - tc:.3f} s"
                        f" (timeout {wait:.3f} s)")
                for m in msgs:
                    self.handle(m)
                if self.next and (len(self.rows) + len(self.dead) >= a.batch_rows or
                                  time.monotonic() - self.batch_t0 >= linger):
                    self.flush()
                if time.monotonic() - last_expire >= 1.0:
                    self.expire()
                    last_expire = time.monotonic()
                if a.until_end and not self.next and self.at_end():
                    break
            self.flush()
        finally:
            self.consumer.close()
            self.db.close()

    def figures(self):
        st = dict(self.st)
        active = ((self.last_commit_ms - self.first_ms) / 1000
                  if self.first_ms is not None and self.last_commit_ms else 0.0)
        st["active_s"] = round(active, 3)
        st["rate"] = round(st["consumed"] / active) if active > 0 else 0
        st["dedup_keys"] = len(self.seen)
        ru = resource.getrusage(resource.RUSAGE_SELF)  # every thread, librdkafka's too
        st["cpu_user_s"], st["cpu_sys_s"] = round(ru.ru_utime, 3), round(ru.ru_stime, 3)
        st["max_rss_kb"] = ru.ru_maxrss
        if self.samples:
            s = sorted(self.samples)
            for name, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999)):
                st[f"latency_{name}_ms"] = round(s[min(len(s) - 1, int(q * len(s)))], 2)
            st["latency_max_ms"] = round(s[-1], 2)
        return st


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--pg", required=True, help="PostgreSQL URI")
    ap.add_argument("--cameras", required=True, help="the camera CSV (config/cameras.csv)")
    ap.add_argument("--until-end", action="store_true",
                    help="stop at the end of every partition as at assignment")
    ap.add_argument("--batch-rows", type=int, default=20000, help="messages a batch (20000)")
    ap.add_argument("--batch-ms", type=int, default=100,
                    help="a batch is written at most this long after its first message (100)")
    ap.add_argument("--dedup-window", type=float, default=600.0,
                    help="seconds an event_id is remembered in memory (600)")
    ap.add_argument("--latency", action="store_true",
                    help="measure commit time - Kafka timestamp of every message")
    ap.add_argument("--verbose", action="store_true", help="a log line per poll and per batch")
    ap.add_argument("-X", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka consumer property")
    args = ap.parse_args()
    if args.batch_rows < 1 or args.batch_ms < 0:
        ap.error("--batch-rows must be >= 1 and --batch-ms >= 0")
    try:
        peer = Peer(args)
    except (psycopg.Error, KafkaException) as e:
        sys.exit(f"peer.py: {type(e).__name__}: {e}")

    def stop(signum, frame):
        peer.running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        peer.run()
    except (psycopg.Error, KafkaException) as e:
        sys.exit(f"peer.py: {type(e).__name__}: {e}")
    print(json.dumps(peer.figures()), flush=True)


if __name__ == "__main__":
    main()
