/*
 * camjoin-notify-recv — a stand-in for systemd's end of $NOTIFY_SOCKET, for
 * tests (not installed).
 *
 *   camjoin-notify-recv PATH [--watch FILE] [--count N] [--timeout SECS]
 *
 * Binds an AF_UNIX SOCK_DGRAM socket at PATH (removing a stale socket file
 * first) and prints every datagram it receives, one output line per field
 * (a datagram's fields are separated by newlines):
 *
 *   SEQ MS PID BYTES FIELD
 *
 *   SEQ    datagram number, from 1; the fields of one datagram share it
 *   MS     CLOCK_MONOTONIC milliseconds since the socket was bound
 *   PID    the sender's pid (SCM_CREDENTIALS), or -1 if the kernel gave none
 *   BYTES  the size of FILE (--watch) at the moment the datagram was read,
 *          or -1: what a log had written before the datagram arrived
 *   FIELD  the field as sent, e.g. READY=1 or STATUS=consumed=10 ...
 *
 * stdout is flushed after each datagram. Exits 0 on SIGTERM or SIGINT, after
 * N datagrams (--count), or when SECS seconds have passed (--timeout, default
 * 300); removes PATH on exit. Exit 2 on a usage or socket error.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int usage(const char *msg)
{
    fprintf(stderr, "camjoin-notify-recv: %s\n"
                    "usage: camjoin-notify-recv PATH [--watch FILE] [--count N] [--timeout SECS]\n",
            msg);
    return 2;
}

static void print_datagram(long seq, long long ms, long pid, long long bytes, char *buf)
{
    for (char *field = buf, *nl; field; field = nl) {
        nl = strchr(field, '\n');
        if (nl)
            *nl++ = '\0';
        if (*field)
            printf("%ld %lld %ld %lld %s\n", seq, ms, pid, bytes, field);
    }
    fflush(stdout);
}

/* Reads one datagram (NUL-terminated into buf) and the sender's pid. */
static ssize_t read_datagram(int fd, char *buf, size_t len, long *pid)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                        .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0)
        return n;
    buf[n] = '\0';
    *pid = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            *pid = (long)uc.pid;
        }
    return n;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *watch = NULL;
    long count = 0, timeout_s = 300;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc)
            watch = argv[++i];
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout_s = strtol(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return usage("bad argument");
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof sa.sun_path)
        return usage("PATH missing or too long");
    memcpy(sa.sun_path, path, strlen(path) + 1);

    struct sigaction act = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);

    int one = 1, fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    unlink(path);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "camjoin-notify-recv: %s: %s\n", path, strerror(errno));
        return 2;
    }
    long long t0 = now_ms(), deadline = t0 + timeout_s * 1000;
    static char buf[65536];
    long seq = 0;
    while (!stop && (count <= 0 || seq < count)) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left > 1000 ? 1000 : (int)left) <= 0)
            continue; /* timeout or EINTR: check stop and the deadline */
        long pid;
        if (read_datagram(fd, buf, sizeof buf, &pid) < 0)
            continue;
        struct stat st;
        long long bytes = watch ? (stat(watch, &st) == 0 ? (long long)st.st_size : 0) : -1;
        print_datagram(++seq, now_ms() - t0, pid, bytes, buf);
    }
    close(fd);
    unlink(path);
    return 0;
}
