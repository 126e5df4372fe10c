/* http — see include/camjoin/http.h.
 *
 * Each connection owns a buffer of HTTP_HEAD_MAX bytes and a timer. Reading
 * stops at the first complete head (http_parse decides) or at the limit;
 * the answer is written with Connection: close and the connection closed
 * when the write completes. The timer answers 408 when the head is not in
 * within REQ_TIMEOUT_MS and, once an answer is being written, closes the
 * connection REQ_TIMEOUT_MS later whatever the client does (a client that
 * never reads cannot hold it). Past HTTP_CONN_MAX open connections a new
 * one is answered 503 at once without reading, so memory and descriptors
 * stay bounded by the cap plus the answers in flight. */
#include "camjoin/http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQ_TIMEOUT_MS 5000
/* the kernel's queue of connections not yet accepted: a burst beyond it
 * waits for SYN retransmits (1 s, 3 s, ...), not for the loop */
#define HTTP_BACKLOG 1024
/* connections past HTTP_CONN_MAX being answered 503 at once, at most */
#define HTTP_ANSWERING_MAX 64

struct http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_handler handler;
    void *ud;
    struct conn *conns;     /* open connections, closed by http_close() */
    size_t nconns;          /* open ones, those being answered 503 included */
    int deferred;           /* a connection waits in libuv for uv_accept() */
    int closing;            /* http_close() ran: accept nothing more */
};

static void accept_one(http_t *s);

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    http_t *srv;
    struct conn *next, **pprev;
    char req[HTTP_HEAD_MAX];
    size_t len;
    int closing, handles;
    char *out;              /* header + body, one buffer */
};

static void conn_freed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0) {
        free(c->out);
        free(c);
    }
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    *c->pprev = c->next; /* unlink */
    if (c->next)
        c->next->pprev = c->pprev;
    uv_close((uv_handle_t *)&c->tcp, conn_freed); /* the descriptor is closed here */
    uv_close((uv_handle_t *)&c->timer, conn_freed);
    http_t *s = c->srv;
    s->nconns--;
    if (s->deferred && !s->closing) { /* a slot is free: take the waiting one */
        s->deferred = 0;
        accept_one(s);
    }
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void on_timeout(uv_timer_t *t);

static void respond(struct conn *c, http_response *res, int head_only)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     res->status, reason(res->status),
                     res->content_type ? res->content_type : "text/plain",
                     res->len);
    size_t body = head_only ? 0 : res->len;
    c->out = malloc((size_t)n + body);
    if (!c->out) {
        free(res->body);
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    if (body)
        memcpy(c->out + n, res->body, body);
    free(res->body);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)n + body));
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0); /* the write's deadline */
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        conn_close(c);
}

static void respond_text(struct conn *c, int status, const char *text)
{
    http_response res = {.status = status, .body = strdup(text),
                         .len = strlen(text)};
    if (!res.body)
        res.len = 0;
    respond(c, &res, 0);
}

static void handle(struct conn *c, const http_request *req)
{
    switch (req->status) {
    case 0:
        break;
    case 405:
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    case 414:
        respond_text(c, 414, "request target too long\n");
        return;
    case 431:
        respond_text(c, 431, "request head too large\n");
        return;
    default:
        respond_text(c, 400, "bad request\n");
        return;
    }
    http_response res = {.status = 404, .content_type = "text/plain"};
    c->srv->handler(c->srv->ud, req->path, &res);
    respond(c, &res, req->head);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(HTTP_HEAD_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    http_request req;
    if (c->out == NULL && http_parse(c->req, c->len, &req) == HTTP_PARSE_DONE)
        handle(c, &req);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->out || c->closing)
        conn_close(c); /* the answer's write did not finish in time */
    else
        respond_text(c, 408, "request head not complete in time\n");
}

static void accept_one(http_t *s)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        s->deferred = 1; /* left to libuv; taken when a connection closes */
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = s->conns; /* link before any close can unlink */
    c->pprev = &s->conns;
    if (s->conns)
        s->conns->pprev = &c->next;
    s->conns = c;
    s->nconns++;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->nconns > HTTP_CONN_MAX) { /* answered unread; its buffer is never filled */
        respond_text(c, 503, "too many connections\n");
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0);
}

/* Past HTTP_CONN_MAX + HTTP_ANSWERING_MAX open connections the new one is
 * not accepted: libuv keeps it and stops listening until uv_accept(), which
 * the next close calls (the kernel's backlog holds the rest). So the
 * descriptors never pass the two caps, however slow the loop. */
static void on_connection(uv_stream_t *l, int status)
{
    http_t *s = l->data;
    if (status < 0)
        return;
    if (s->nconns >= HTTP_CONN_MAX + HTTP_ANSWERING_MAX) {
        s->deferred = 1;
        return;
    }
    accept_one(s);
}

/* Splits PORT, :PORT, HOST:PORT or [V6ADDR]:PORT. host: "127.0.0.1" for a
 * port alone, "" (every interface) for :PORT. 0, or -1 when malformed. */
static int split_listen(const char *spec, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(spec, ':');
    const char *portstr = colon ? colon + 1 : spec;
    snprintf(host, hostlen, "%s", colon ? "" : "127.0.0.1");
    if (colon && colon != spec) {
        size_t hl = (size_t)(colon - spec);
        if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
            spec++;
            hl -= 2;
        } else if (memchr(spec, ':', hl)) {
            return -1; /* a bare IPv6 address needs brackets */
        }
        if (hl == 0 || hl >= hostlen)
            return -1;
        memcpy(host, spec, hl);
        host[hl] = '\0';
    }
    char *end;
    long n = strtol(portstr, &end, 10);
    if (!*portstr || *end || n < 1 || n > 65535)
        return -1;
    *port = (int)n;
    return 0;
}

/* The address to bind: every interface ("::", which also takes IPv4, or
 * "0.0.0.0" where IPv6 is off), a numeric address, or a host name resolved
 * now (getaddrinfo, blocking: this runs once, at startup). */
static int resolve_listen(const char *host, int port, struct sockaddr_storage *sa,
                          char *why, size_t whylen)
{
    if (!*host) {
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        if (fd >= 0)
            close(fd);
        return fd >= 0 ? uv_ip6_addr("::", port, (struct sockaddr_in6 *)sa)
                       : uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)sa);
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "%s", gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    if (res->ai_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

int http_check_listen(const char *listen, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (split_listen(listen, host, sizeof host, &port) == 0)
        return 0;
    snprintf(err, errlen, "http.listen: expected PORT, :PORT, HOST:PORT or [ADDR]:PORT "
             "(e.g. 127.0.0.1:9464), got \"%s\"", listen);
    return -1;
}

http_t *http_new(uv_loop_t *loop, const char *listen, http_handler h, void *ud,
                 char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    char host[256], why[256] = "not an address";
    int rc, port;
    if (http_check_listen(listen, err, errlen) != 0)
        return NULL;
    if (split_listen(listen, host, sizeof host, &port) != 0 ||
        resolve_listen(host, port, &sa, why, sizeof why) != 0) {
        snprintf(err, errlen, "http.listen %s: %s", listen, why);
        return NULL;
    }
    http_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->handler = h;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, HTTP_BACKLOG, on_connection)) != 0) {
        snprintf(err, errlen, "http.listen %s: %s", listen, uv_strerror(rc));
        http_close(s);
        return NULL;
    }
    return s;
}

static void listener_closed(uv_handle_t *h) { free(h->data); }

void http_close(http_t *s)
{
    if (!s)
        return;
    s->closing = 1;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, listener_closed);
}
