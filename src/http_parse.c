/* http_parse — see include/camjoin/http.h (http_parse).
 *
 * A request head is taken whole or refused: the request line must be
 * METHOD SP /TARGET SP HTTP/1.x, in visible ASCII; header lines may hold
 * visible ASCII, spaces, tabs and bytes of 0x80 and up (obs-text), and
 * nothing below 0x20 but the line ends. The headers' contents are not read:
 * the server answers GET and HEAD of a path and closes, so nothing in them
 * can change the answer. Pure; any thread; the fuzz target drives it.
 */
#include "camjoin/http.h"

#include <string.h>

static int is_token(char ch) { return ch >= 'A' && ch <= 'Z'; }
static int is_target(unsigned char ch) { return ch > 0x20 && ch < 0x7f; }

/* The end of the head (one past its blank line), or 0 when not there yet. */
static size_t head_end(const char *b, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (b[i] != '\n')
            continue;
        if (b[i + 1] == '\n')
            return i + 2;
        if (b[i + 1] == '\r' && i + 2 < len && b[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int done(http_request *req, int status)
{
    req->status = status;
    return HTTP_PARSE_DONE;
}

int http_parse(const char *b, size_t len, http_request *req)
{
    memset(req, 0, sizeof *req);
    size_t end = head_end(b, len);
    if (!end)
        return len >= HTTP_HEAD_MAX ? done(req, 431) : HTTP_PARSE_MORE;
    if (end > HTTP_HEAD_MAX)
        return done(req, 431);
    for (size_t i = 0; i < end; i++) { /* no control bytes but line ends and tabs */
        unsigned char ch = (unsigned char)b[i];
        if (ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t')
            return done(req, 400);
    }
    size_t i = 0;
    while (i < end && is_token(b[i]))
        i++;
    size_t m = i;
    if (m == 0 || m >= sizeof req->method || b[i] != ' ')
        return done(req, 400);
    memcpy(req->method, b, m);
    size_t t0 = ++i;
    if (b[i] != '/')
        return done(req, 400);
    while (i < end && is_target((unsigned char)b[i]))
        i++;
    size_t tlen = i - t0;
    if (b[i] != ' ')
        return done(req, 400);
    i++;
    if (end - i < 9 || memcmp(b + i, "HTTP/1.", 7) != 0 || (b[i + 7] != '0' && b[i + 7] != '1'))
        return done(req, 400);
    i += 8;
    if (b[i] == '\r')
        i++;
    if (b[i] != '\n')
        return done(req, 400);
    if (tlen >= sizeof req->path)
        return done(req, 414);
    req->head = strcmp(req->method, "HEAD") == 0;
    if (!req->head && strcmp(req->method, "GET") != 0)
        return done(req, 405);
    memcpy(req->path, b + t0, tlen);
    req->path[strcspn(req->path, "?")] = '\0'; /* query strings are ignored */
    return done(req, 0);
}
