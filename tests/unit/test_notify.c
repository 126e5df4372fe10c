/* Unit tests for notify: each call against a real AF_UNIX datagram socket
 * named by $NOTIFY_SOCKET, asserting the exact bytes of every datagram. Built
 * without libsystemd (CAMJOIN_SYSTEMD=OFF), the same calls must send nothing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "camjoin/notify.h"

struct sock {
    char dir[64];
    char path[96];
    int fd;
};

static int sock_setup(void **state)
{
    struct sock *s = calloc(1, sizeof *s);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 2};
    assert_non_null(s);
    strcpy(s->dir, "/tmp/camjoin-notify.XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof s->path, "%s/notify.sock", s->dir);
    assert_true(strlen(s->path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    setenv("NOTIFY_SOCKET", s->path, 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    *state = s;
    return 0;
}

static int sock_teardown(void **state)
{
    struct sock *s = *state;
    close(s->fd);
    unlink(s->path);
    rmdir(s->dir);
    unsetenv("NOTIFY_SOCKET");
    free(s);
    return 0;
}

/* Nothing is waiting on the socket. */
static void expect_none(struct sock *s)
{
    char buf[64];
    errno = 0;
    assert_int_equal(recv(s->fd, buf, sizeof buf, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

#ifdef CAMJOIN_HAVE_SYSTEMD

/* The next datagram, which must equal `want` byte for byte. */
static void expect_dgram(struct sock *s, const char *want)
{
    char buf[2048];
    ssize_t n = recv(s->fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0); /* -1: nothing arrived within 2 s */
    buf[n] = '\0';
    assert_int_equal((size_t)n, strlen(want));
    assert_string_equal(buf, want);
}

static void test_each_call_sends_its_fields(void **state)
{
    struct sock *s = *state;
    assert_true(notify_enabled());
    notify_ready(NULL);
    expect_dgram(s, "READY=1");
    notify_ready("consuming from 4 partitions");
    expect_dgram(s, "READY=1\nSTATUS=consuming from 4 partitions");
    notify_status("consumed=%d rows=%d rate=%.1f/s lag=%lld", 1000, 950, 2500.0, 7LL);
    expect_dgram(s, "STATUS=consumed=1000 rows=950 rate=2500.0/s lag=7");
    notify_reloading();
    expect_dgram(s, "RELOADING=1");
    notify_stopping(NULL);
    expect_dgram(s, "STOPPING=1");
    notify_stopping("flushing 12 rows");
    expect_dgram(s, "STOPPING=1\nSTATUS=flushing 12 rows");
    notify_watchdog();
    expect_dgram(s, "WATCHDOG=1");
    expect_none(s);
    /* unset_environment = 0: the variable survives every call */
    assert_string_equal(getenv("NOTIFY_SOCKET"), s->path);
}

/* A status is one line: a newline cannot smuggle in a READY=1 field. */
static void test_status_is_one_line(void **state)
{
    struct sock *s = *state;
    notify_status("%s", "lag=3\nREADY=1");
    expect_dgram(s, "STATUS=lag=3 READY=1");
    notify_ready("a\r\nb");
    expect_dgram(s, "READY=1\nSTATUS=a  b");
    notify_stopping("x\nWATCHDOG=1");
    expect_dgram(s, "STOPPING=1\nSTATUS=x WATCHDOG=1");
    expect_none(s);
}

static void test_long_status_truncated(void **state)
{
    struct sock *s = *state;
    char big[NOTIFY_STATUS_MAX * 2 + 1], want[NOTIFY_STATUS_MAX + 16];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    notify_status("%s", big);
    snprintf(want, sizeof want, "STATUS=%.*s", NOTIFY_STATUS_MAX - 1, big);
    assert_int_equal(strlen(want), 7 + 511);
    expect_dgram(s, want);
}

static void test_unset_socket_sends_nothing(void **state)
{
    struct sock *s = *state;
    unsetenv("NOTIFY_SOCKET");
    assert_false(notify_enabled());
    notify_ready("x");
    notify_status("y");
    notify_watchdog();
    setenv("NOTIFY_SOCKET", "", 1);
    assert_false(notify_enabled());
    notify_stopping(NULL);
    expect_none(s);
}

static void test_watchdog_usec(void **state)
{
    char pid[32];
    (void)state;
    assert_int_equal(notify_watchdog_usec(), 0); /* no WATCHDOG_USEC */
    setenv("WATCHDOG_USEC", "1000000", 1);
    assert_int_equal(notify_watchdog_usec(), 1000000);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(notify_watchdog_usec(), 1000000);
    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1); /* meant for another process */
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "30000000", 1);
    assert_int_equal(notify_watchdog_usec(), 30000000);
    setenv("WATCHDOG_USEC", "soon", 1);
    assert_int_equal(notify_watchdog_usec(), 0);
    /* read, not consumed: the same answer twice */
    setenv("WATCHDOG_USEC", "500000", 1);
    assert_int_equal(notify_watchdog_usec(), 500000);
    assert_string_equal(getenv("WATCHDOG_USEC"), "500000");
    assert_int_equal(notify_watchdog_usec(), 500000);
    unsetenv("WATCHDOG_USEC");
}

#else /* CAMJOIN_SYSTEMD=OFF: every call is a no-op */

static void test_stubs_send_nothing(void **state)
{
    struct sock *s = *state;
    setenv("WATCHDOG_USEC", "1000000", 1);
    assert_false(notify_enabled());
    assert_int_equal(notify_watchdog_usec(), 0);
    notify_ready(NULL);
    notify_ready("x");
    notify_status("consumed=%d", 1);
    notify_reloading();
    notify_stopping("y");
    notify_watchdog();
    expect_none(s);
    unsetenv("WATCHDOG_USEC");
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef CAMJOIN_HAVE_SYSTEMD
        cmocka_unit_test_setup_teardown(test_each_call_sends_its_fields, sock_setup, sock_teardown),
        cmocka_unit_test_setup_teardown(test_status_is_one_line, sock_setup, sock_teardown),
        cmocka_unit_test_setup_teardown(test_long_status_truncated, sock_setup, sock_teardown),
        cmocka_unit_test_setup_teardown(test_unset_socket_sends_nothing, sock_setup, sock_teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_usec, sock_setup, sock_teardown),
#else
        cmocka_unit_test_setup_teardown(test_stubs_send_nothing, sock_setup, sock_teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
