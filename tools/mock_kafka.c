/*
 * camjoin-mock-kafka — a Kafka-protocol broker for tests, built on
 * librdkafka's mock cluster (rdkafka_mock.h).
 *
 * The cluster runs on librdkafka's own threads inside a dummy producer
 * handle; this program only creates it, prints the bootstrap list as the
 * first line of stdout, and then serves a line-oriented control interface on
 * stdin until SIGTERM, SIGINT or `quit`. Every command is answered with one
 * line, `ok` or `error: ...`, flushed at once. EOF on stdin does not stop the
 * server: tests run it in the background with stdin from /dev/null. A NUL
 * byte (binary input such as /dev/zero) is treated like EOF.
 *
 * Signals: SIGINT and SIGTERM are blocked before any librdkafka thread is
 * started (threads inherit the mask), and unblocked only inside ppoll(), so
 * the main thread is the one that sees them and ppoll() returns EINTR.
 *
 * Known limit of the mock: each partition keeps only about 5 MiB or 100k
 * message sets and drops the oldest beyond that (see tools/README.md).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 64
#define LINE_MAX_BYTES 1024

struct topic_spec {
    const char *name;
    int partitions;
};

struct mock {
    rd_kafka_t *rk;                  /* dummy handle that hosts the cluster */
    rd_kafka_mock_cluster_t *mcluster;
    int brokers;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *out)
{
    fprintf(out,
            "usage: camjoin-mock-kafka [--brokers N] [--topic NAME [--partitions P]]... [--help]\n"
            "Runs a librdkafka mock cluster on loopback; prints the bootstrap list as the\n"
            "first stdout line, then serves until SIGTERM/SIGINT or `quit` on stdin.\n"
            "stdin commands (answer: one line `ok` or `error: ...`):\n"
            "  broker-down ID | broker-up ID | request-errors APIKEY ERRCODE COUNT\n"
            "  topic-create NAME PARTITIONS | quit\n");
}

/* Parses a whole decimal integer in [min, max]; returns 0 or -1. */
static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int replication(const struct mock *m) { return m->brokers < 3 ? m->brokers : 3; }

static int cmd_broker(struct mock *m, char **argv, int argc, int up, char *err,
                      size_t errlen)
{
    long id;
    rd_kafka_resp_err_t rc;

    if (argc != 2 || parse_int(argv[1], 1, m->brokers, &id) != 0) {
        snprintf(err, errlen, "usage: %s ID (1..%d)", argv[0], m->brokers);
        return -1;
    }
    rc = up ? rd_kafka_mock_broker_set_up(m->mcluster, (int32_t)id)
            : rd_kafka_mock_broker_set_down(m->mcluster, (int32_t)id);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "%s", rd_kafka_err2str(rc));
        return -1;
    }
    return 0;
}

static int cmd_request_errors(struct mock *m, char **argv, int argc, char *err,
                              size_t errlen)
{
    long apikey, code, count;
    rd_kafka_resp_err_t *errs;

    if (argc != 4 || parse_int(argv[1], 0, INT16_MAX, &apikey) != 0 ||
        parse_int(argv[2], INT_MIN, INT_MAX, &code) != 0 ||
        parse_int(argv[3], 1, 100000, &count) != 0) {
        snprintf(err, errlen, "usage: request-errors APIKEY ERRCODE COUNT (COUNT 1..100000)");
        return -1;
    }
    errs = malloc((size_t)count * sizeof(*errs));
    if (errs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (long i = 0; i < count; i++)
        errs[i] = (rd_kafka_resp_err_t)code;
    rd_kafka_mock_push_request_errors_array(m->mcluster, (int16_t)apikey,
                                            (size_t)count, errs);
    free(errs);
    return 0;
}

static int create_topic(struct mock *m, const char *name, int partitions,
                        char *err, size_t errlen)
{
    rd_kafka_resp_err_t rc;

    rc = rd_kafka_mock_topic_create(m->mcluster, name, partitions, replication(m));
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "topic %s: %s", name, rd_kafka_err2str(rc));
        return -1;
    }
    return 0;
}

static int cmd_topic_create(struct mock *m, char **argv, int argc, char *err,
                            size_t errlen)
{
    long parts;

    if (argc != 3 || parse_int(argv[2], 1, 100000, &parts) != 0) {
        snprintf(err, errlen, "usage: topic-create NAME PARTITIONS");
        return -1;
    }
    return create_topic(m, argv[1], (int)parts, err, errlen);
}

/* Executes one command line (modified in place). Returns 1 for quit, else 0;
 * the answer line has already been written. */
static int run_command(struct mock *m, char *line)
{
    char *argv[8], *save = NULL, *tok;
    char err[256];
    int argc = 0, rc;

    for (tok = strtok_r(line, " \t\r", &save); tok != NULL && argc < 8;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    if (argc == 0)
        return 0; /* blank line: no answer */
    if (tok != NULL) {
        snprintf(err, sizeof(err), "too many arguments");
        rc = -1;
    } else if (strcmp(argv[0], "broker-down") == 0) {
        rc = cmd_broker(m, argv, argc, 0, err, sizeof(err));
    } else if (strcmp(argv[0], "broker-up") == 0) {
        rc = cmd_broker(m, argv, argc, 1, err, sizeof(err));
    } else if (strcmp(argv[0], "request-errors") == 0) {
        rc = cmd_request_errors(m, argv, argc, err, sizeof(err));
    } else if (strcmp(argv[0], "topic-create") == 0) {
        rc = cmd_topic_create(m, argv, argc, err, sizeof(err));
    } else if (strcmp(argv[0], "quit") == 0 && argc == 1) {
        printf("ok\n");
        fflush(stdout);
        return 1;
    } else {
        snprintf(err, sizeof(err), "unknown command '%s'", argv[0]);
        rc = -1;
    }
    if (rc == 0)
        printf("ok\n");
    else
        printf("error: %s\n", err);
    fflush(stdout);
    return 0;
}

/* Serves stdin commands until a signal or `quit`. After EOF on stdin only a
 * signal ends the loop. */
static void serve(struct mock *m, const sigset_t *waitmask)
{
    char buf[LINE_MAX_BYTES];
    size_t used = 0;
    int discarding = 0; /* inside an over-long line */
    struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

    while (!stop_signal) {
        ssize_t n;
        char *nl;

        if (ppoll(&pfd, 1, NULL, waitmask) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "camjoin-mock-kafka: poll: %s\n", strerror(errno));
            return;
        }
        n = read(STDIN_FILENO, buf + used, sizeof(buf) - used);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n > 0 && memchr(buf + used, '\0', (size_t)n) != NULL) {
            /* Binary input (e.g. </dev/zero) is not a control channel:
             * stop reading it rather than spin on it. */
            fprintf(stderr, "camjoin-mock-kafka: NUL byte on stdin, control interface disabled\n");
            n = 0;
        }
        if (n <= 0) {
            pfd.fd = -1; /* EOF or error: keep serving, ignore stdin */
            continue;
        }
        used += (size_t)n;
        while ((nl = memchr(buf, '\n', used)) != NULL) {
            size_t len = (size_t)(nl - buf);
            int quit = 0;

            *nl = '\0';
            if (!discarding)
                quit = run_command(m, buf);
            else
                discarding = 0;
            memmove(buf, nl + 1, used - len - 1);
            used -= len + 1;
            if (quit)
                return;
        }
        if (used == sizeof(buf)) {
            if (!discarding) {
                printf("error: line too long\n");
                fflush(stdout);
            }
            discarding = 1;
            used = 0;
        }
    }
}

static int parse_args(int argc, char **argv, int *brokers,
                      struct topic_spec *topics, int *ntopics)
{
    static const struct option opts[] = {
        { "brokers", required_argument, NULL, 'b' },
        { "topic", required_argument, NULL, 't' },
        { "partitions", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    long v;

    *brokers = 1;
    *ntopics = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (parse_int(optarg, 1, 64, &v) != 0) {
                fprintf(stderr, "camjoin-mock-kafka: --brokers: expected 1..64, got '%s'\n", optarg);
                return 2;
            }
            *brokers = (int)v;
            break;
        case 't':
            if (*ntopics == MAX_TOPICS || *optarg == '\0') {
                fprintf(stderr, "camjoin-mock-kafka: --topic: empty name or more than %d topics\n", MAX_TOPICS);
                return 2;
            }
            topics[*ntopics].name = optarg;
            topics[*ntopics].partitions = 1;
            (*ntopics)++;
            break;
        case 'p':
            if (*ntopics == 0 || parse_int(optarg, 1, 100000, &v) != 0) {
                fprintf(stderr, "camjoin-mock-kafka: --partitions: expected 1..100000 after a --topic, got '%s'\n", optarg);
                return 2;
            }
            topics[*ntopics - 1].partitions = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "camjoin-mock-kafka: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1; /* continue */
}

int main(int argc, char **argv)
{
    struct topic_spec topics[MAX_TOPICS];
    struct mock m = { 0 };
    struct sigaction sa;
    sigset_t block, waitmask;
    rd_kafka_conf_t *conf;
    char err[512];
    int ntopics, rc;

    rc = parse_args(argc, argv, &m.brokers, topics, &ntopics);
    if (rc >= 0)
        return rc;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout must not kill the broker */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);

    conf = rd_kafka_conf_new();
    /* The host handle has no bootstrap.servers on purpose: hide that notice. */
    rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err));
    m.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (m.rk == NULL) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "camjoin-mock-kafka: rd_kafka_new: %s\n", err);
        return 1;
    }
    conf = NULL; /* owned by rk */
    m.mcluster = rd_kafka_mock_cluster_new(m.rk, m.brokers);
    if (m.mcluster == NULL) {
        fprintf(stderr, "camjoin-mock-kafka: cannot create the mock cluster\n");
        goto fail_rk;
    }
    for (int i = 0; i < ntopics; i++) {
        if (create_topic(&m, topics[i].name, topics[i].partitions, err, sizeof(err)) != 0) {
            fprintf(stderr, "camjoin-mock-kafka: --topic: %s\n", err);
            goto fail_cluster;
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(m.mcluster));
    fflush(stdout);

    serve(&m, &waitmask);

    rd_kafka_mock_cluster_destroy(m.mcluster);
    rd_kafka_destroy(m.rk);
    return 0;

fail_cluster:
    rd_kafka_mock_cluster_destroy(m.mcluster);
fail_rk:
    rd_kafka_destroy(m.rk);
    return 1;
}
