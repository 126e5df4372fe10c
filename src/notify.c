/* notify — see include/camjoin/notify.h. */
#include "camjoin/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef CAMJOIN_HAVE_SYSTEMD
#include <string.h>
#include <systemd/sd-daemon.h>

bool notify_enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s && *s;
}

/* In place: a status is one line, so it cannot add a field of its own. */
static char *one_line(char *s)
{
    for (char *p = s; (p = strpbrk(p, "\r\n")); p++)
        *p = ' ';
    return s;
}

/* "<head>" or "<head>\nSTATUS=<status>". */
static void send_with_status(const char *head, const char *status)
{
    char buf[NOTIFY_STATUS_MAX];
    if (!notify_enabled())
        return;
    if (!status) {
        sd_notify(0, head);
        return;
    }
    snprintf(buf, sizeof buf, "%s", status);
    sd_notifyf(0, "%s\nSTATUS=%s", head, one_line(buf));
}

void notify_ready(const char *status) { send_with_status("READY=1", status); }
void notify_stopping(const char *status) { send_with_status("STOPPING=1", status); }

void notify_status(const char *fmt, ...)
{
    char buf[NOTIFY_STATUS_MAX];
    va_list ap;
    if (!notify_enabled())
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", one_line(buf));
}

void notify_reloading(void)
{
    if (notify_enabled())
        sd_notify(0, "RELOADING=1");
}

void notify_extend_timeout(uint64_t usec)
{
    if (notify_enabled())
        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
}

void notify_watchdog(void)
{
    if (notify_enabled())
        sd_notify(0, "WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

#else /* built without libsystemd: nothing is ever sent */

bool notify_enabled(void) { return false; }
void notify_ready(const char *status) { (void)status; }
void notify_stopping(const char *status) { (void)status; }
void notify_status(const char *fmt, ...) { (void)fmt; }
void notify_reloading(void) {}
void notify_extend_timeout(uint64_t usec) { (void)usec; }
void notify_watchdog(void) {}
uint64_t notify_watchdog_usec(void) { return 0; }

#endif
