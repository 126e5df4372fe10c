/*
 * notify — tells systemd (Type=notify) what the daemon is doing.
 *
 * systemd passes a datagram socket in $NOTIFY_SOCKET; each call here sends one
 * datagram of newline-separated `KEY=value` fields through libsystemd's
 * sd_notify()/sd_notifyf(), which own the protocol. The fields are:
 *
 *   READY=1           startup is complete (the unit becomes "active"); sent
 *                     again after a reload
 *   RELOADING=1       a SIGHUP reload began; READY=1 ends it
 *   STOPPING=1        a graceful stop began
 *   STATUS=<text>     one line shown by `systemctl status`
 *   WATCHDOG=1        keep-alive; must arrive within WatchdogSec= or systemd
 *                     kills and restarts the service
 *   EXTEND_TIMEOUT_USEC=<n>  still starting (waiting for PostgreSQL): the
 *                     start timeout now ends n microseconds from now
 *
 * Invariants: the environment is never unset (unset_environment = 0), so every
 * call behaves the same and a child process would inherit the socket too. A
 * status is one line: a newline in it becomes a space, so it can never forge
 * another field. A STATUS longer than NOTIFY_STATUS_MAX bytes is truncated.
 * Send failures are ignored: telling systemd is best effort and the daemon
 * must run the same with or without it.
 *
 * Built without libsystemd (cmake -DCAMJOIN_SYSTEMD=OFF, or libsystemd-dev
 * absent), every function is an empty stub: notify_enabled() is false,
 * notify_watchdog_usec() is 0, nothing is sent.
 *
 * Cost: one getenv() and one sendmsg(2) on a connectionless AF_UNIX socket per
 * call (libsystemd opens and closes the socket each time); nothing when
 * $NOTIFY_SOCKET is unset. No shared state: safe from any thread, though
 * camjoin calls it from the loop thread only.
 */
#ifndef CAMJOIN_NOTIFY_H
#define CAMJOIN_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#define NOTIFY_STATUS_MAX 512

/* True when built with libsystemd and $NOTIFY_SOCKET is set (non-empty). */
bool notify_enabled(void);
/* "READY=1\nSTATUS=<status>"; status may be NULL (then "READY=1" alone). */
void notify_ready(const char *status);
/* "STATUS=<printf text>". */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "RELOADING=1". */
void notify_reloading(void);
/* "STOPPING=1\nSTATUS=<status>"; status may be NULL. */
void notify_stopping(const char *status);
/* "EXTEND_TIMEOUT_USEC=<usec>". */
void notify_extend_timeout(uint64_t usec);
/* "WATCHDOG=1". */
void notify_watchdog(void);
/* WatchdogSec= in microseconds (sd_watchdog_enabled: $WATCHDOG_USEC, and
 * $WATCHDOG_PID when set must be this process); 0 when there is no watchdog.
 * Send notify_watchdog() at half this interval. */
uint64_t notify_watchdog_usec(void);

#endif
