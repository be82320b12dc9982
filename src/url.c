/* Server URLs: redis://, rediss://, unix://, http(s):// for the REST transport, and
 * redis-sentinel:// / rediss-sentinel:// (the Lettuce convention). redis(s):// and the sentinel
 * schemes take a comma-separated host list: cluster seeds, or the sentinels.
 * Messages name the part that is wrong but never echo the userinfo, which may hold a password. */
#include "fmacros.h"

#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dup_range(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into a new string. NUL (%00) is refused: it would cut the secret. */
static int decode(const char *s, size_t n, const char *what, char **out) {
    char *p = malloc(n + 1), *o = p;
    if (p == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory parsing URL");
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(p);
                return dlock__err(DLOCK_EINVAL, "URL: bad percent-escape in the %s", what);
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    *out = p;
    return DLOCK_OK;
}

/* The offending text is never quoted: in "redis://user:secret" (no "@host") the text after
 * the colon, taken for a port, is a password. */
static int parse_int(const char *s, size_t n, long min, long max, const char *what, long *out) {
    char buf[16];
    int digits = n > 0 && n < sizeof buf;
    for (size_t i = 0; digits && i < n; i++) {
        digits = isdigit((unsigned char)s[i]) != 0;
    }
    if (!digits) {
        return dlock__err(DLOCK_EINVAL,
                          "URL: the %s is not a number from %ld to %ld (a password goes "
                          "before the host: redis://user:password@host:port)",
                          what, min, max);
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    long v = strtol(buf, NULL, 10);
    if (v < min || v > max) {
        return dlock__err(DLOCK_EINVAL, "URL: %s '%s' is out of range (%ld to %ld)", what, buf, min,
                          max);
    }
    *out = v;
    return DLOCK_OK;
}

/* Query string: only db=N is understood; anything else is an error rather than silently
 * ignored, so a typo such as ?dB=2 cannot send writes to the wrong database. */
static int parse_query(const char *q, dlock__url *u) {
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        if (n > 3 && strncmp(q, "db=", 3) == 0) {
            long db;
            int rc = parse_int(q + 3, n - 3, 0, 1000000, "db", &db);
            if (rc != DLOCK_OK) {
                return rc;
            }
            u->db = (int)db;
        } else if (n > 0) {
            size_t k = strcspn(q, "=&");
            return dlock__err(DLOCK_EINVAL, "URL: unknown query parameter '%.*s' (only db=N)",
                              (int)(k > 40 ? 40 : k), q);
        }
        q += n;
        if (*q == '&') {
            q++;
        }
    }
    return DLOCK_OK;
}

static int parse_unix(const char *rest, dlock__url *u) {
    /* unix:///abs/path[?db=N]: no host part, so rest starts with the path's '/'. */
    if (rest[0] != '/') {
        return dlock__err(
            DLOCK_EINVAL,
            "URL: unix:// needs an absolute socket path, e.g. unix:///run/redis.sock");
    }
    size_t n = strcspn(rest, "?#");
    if (n <= 1) {
        return dlock__err(DLOCK_EINVAL, "URL: unix:// socket path is empty");
    }
    int rc = decode(rest, n, "socket path", &u->path);
    if (rc != DLOCK_OK) {
        return rc;
    }
    return rest[n] == '?' ? parse_query(rest + n + 1, u) : DLOCK_OK;
}

/* One host[:port] (IPv6 in brackets) into *host (malloc'd) and *port. */
static int parse_hostport(const char *a, size_t n, int default_port, char **host, int *port) {
    const char *hend, *portp = NULL;
    int rc;
    if (n > 0 && a[0] == '[') {
        hend = memchr(a, ']', n);
        if (hend == NULL) {
            return dlock__err(DLOCK_EINVAL, "URL: IPv6 host is missing its closing ']'");
        }
        *host = dup_range(a + 1, (size_t)(hend - a - 1));
        if (hend + 1 < a + n) {
            if (hend[1] != ':') {
                return dlock__err(DLOCK_EINVAL, "URL: unexpected text after ']' in the host");
            }
            portp = hend + 2;
        }
    } else {
        hend = memchr(a, ':', n);
        *host = dup_range(a, hend != NULL ? (size_t)(hend - a) : n);
        portp = hend != NULL ? hend + 1 : NULL;
    }
    if (*host == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory parsing URL");
    }
    if ((*host)[0] == '\0') {
        return dlock__err(DLOCK_EINVAL, "URL: the host is empty");
    }
    for (const char *h = *host; *h != '\0'; h++) {
        if (isspace((unsigned char)*h) || *h == '/' || *h == '@') {
            return dlock__err(DLOCK_EINVAL, "URL: host '%.64s' has an invalid character", *host);
        }
    }
    *port = default_port;
    if (portp != NULL) {
        long v;
        if ((rc = parse_int(portp, (size_t)(a + n - portp), 1, 65535, "port", &v)) != DLOCK_OK) {
            return rc;
        }
        *port = (int)v;
    }
    return DLOCK_OK;
}

/* host[:port][,host[:port]...]: the first into u->host/port, the others into u->extra. */
static int parse_hosts(const char *a, size_t n, dlock__url *u, int default_port, int list) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += a[i] == ',';
    }
    if (k > 0 && !list) {
        return dlock__err(DLOCK_EINVAL, "URL: a host list is not allowed here");
    }
    if (k > 0 && (u->extra = calloc(k, sizeof *u->extra)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory parsing URL");
    }
    for (size_t i = 0; i <= k; i++) {
        size_t len = strcspn(a, ",");
        len = len < n ? len : n;
        int rc = i == 0 ? parse_hostport(a, len, default_port, &u->host, &u->port)
                        : parse_hostport(a, len, default_port, &u->extra[i - 1].host,
                                         &u->extra[i - 1].port);
        u->nextra = i;
        if (rc != DLOCK_OK) {
            return rc;
        }
        a += len + 1;
        n -= len < n ? len + 1 : n;
    }
    return DLOCK_OK;
}

static int parse_authority(const char *a, size_t n, dlock__url *u, int default_port, int list) {
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == '@') {
            at = a + i; /* the last '@' ends the userinfo; passwords may contain '@' */
        }
    }
    int rc;
    if (at != NULL) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        size_t ulen = colon != NULL ? (size_t)(colon - a) : (size_t)(at - a);
        if (ulen > 0 && (rc = decode(a, ulen, "user name", &u->username)) != DLOCK_OK) {
            return rc;
        }
        if (colon != NULL && (rc = decode(colon + 1, (size_t)(at - colon - 1), "password",
                                          &u->password)) != DLOCK_OK) {
            return rc;
        }
        n -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    return parse_hosts(a, n, u, default_port, list);
}

/* An '@' past the authority means the user info holds a raw '/', '?' or '#': refuse it without
 * quoting anything, since the text around it is likely the password. */
static int check_userinfo_escaped(const char *rest, size_t alen) {
    const char *at = strrchr(rest, '@');
    if (at != NULL && at >= rest + alen) {
        return dlock__err(DLOCK_EINVAL, "URL: the user name or password contains '/', '?' or "
                                        "'#': percent-encode them (%%2F, %%3F, %%23), or pass "
                                        "the password in the password option");
    }
    return DLOCK_OK;
}

static int parse_redis(const char *rest, dlock__url *u) {
    size_t alen = strcspn(rest, "/?#");
    if (check_userinfo_escaped(rest, alen) != DLOCK_OK) {
        return DLOCK_EINVAL;
    }
    int rc = parse_authority(rest, alen, u, u->sentinel ? 26379 : 6379, 1);
    if (rc != DLOCK_OK) {
        return rc;
    }
    const char *p = rest + alen;
    if (*p == '/') {
        p++;
        size_t dlen = strcspn(p, "?#");
        if (dlen > 0) {
            long db;
            if ((rc = parse_int(p, dlen, 0, 1000000, "database number", &db)) != DLOCK_OK) {
                return rc;
            }
            u->db = (int)db;
        }
        p += dlen;
    }
    if (*p == '?') {
        size_t qlen = strcspn(p + 1, "#");
        char *q = dup_range(p + 1, qlen);
        if (q == NULL) {
            return dlock__err(DLOCK_ENOMEM, "out of memory parsing URL");
        }
        rc = parse_query(q, u);
        free(q);
        if (rc != DLOCK_OK) {
            return rc;
        }
        p += 1 + qlen;
    }
    if (*p == '#' && !u->sentinel) {
        return dlock__err(DLOCK_EINVAL, "URL: a fragment ('#') is not allowed");
    }
    if (u->sentinel) {
        /* #master-name: the name the sentinels know the master by. */
        if (*p != '#' || p[1] == '\0') {
            return dlock__err(DLOCK_EINVAL, "URL: a sentinel URL needs the master's name after "
                                            "'#', e.g. redis-sentinel://host:26379#mymaster");
        }
        return decode(p + 1, strlen(p + 1), "master name", &u->master_name);
    }
    return DLOCK_OK;
}

static int parse_http(const char *text, const char *rest, dlock__url *u, int default_port) {
    size_t alen = strcspn(rest, "/?#");
    if (strchr(rest, '@') != NULL) {
        return dlock__err(DLOCK_EINVAL, "URL: credentials in an http(s) URL are not supported; "
                                        "pass the REST token in the rest_token option");
    }
    if (strpbrk(rest, "?#") != NULL) {
        /* Upstash's ?_token= would put the secret in every message that names the server. */
        return dlock__err(DLOCK_EINVAL, "URL: a query or fragment in an http(s) URL is not "
                                        "supported; pass the REST token in the rest_token option");
    }
    int rc = parse_authority(rest, alen, u, default_port, 0);
    if (rc != DLOCK_OK) {
        return rc;
    }
    /* Keep the base URL without a trailing '/', as @upstash/redis does. */
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '/') {
        n--;
    }
    if ((u->path = dup_range(text, n)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory parsing URL");
    }
    return DLOCK_OK;
}

int dlock__url_parse(const char *text, dlock__url *out) {
    memset(out, 0, sizeof *out);
    if (text == NULL) {
        return dlock__err(DLOCK_EINVAL, "URL is NULL");
    }
    if (text[0] == '\0') {
        return dlock__err(DLOCK_EINVAL, "URL is empty");
    }
    for (const char *p = text; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return dlock__err(DLOCK_EINVAL,
                              "URL contains a space or control character at offset "
                              "%zu",
                              (size_t)(p - text));
        }
    }
    const char *sep = strstr(text, "://");
    if (sep == NULL) {
        return dlock__err(DLOCK_EINVAL, "URL has no scheme: expected redis://, rediss://, "
                                        "unix://, https:// or http://");
    }
    size_t slen = (size_t)(sep - text);
    const char *rest = sep + 3;
    int rc;
    if (slen == 5 && strncasecmp(text, "redis", 5) == 0) {
        out->scheme = DLOCK__SCHEME_REDIS;
        rc = parse_redis(rest, out);
    } else if (slen == 6 && strncasecmp(text, "rediss", 6) == 0) {
        out->scheme = DLOCK__SCHEME_REDISS;
        rc = parse_redis(rest, out);
    } else if ((slen == 14 && strncasecmp(text, "redis-sentinel", 14) == 0) ||
               (slen == 15 && strncasecmp(text, "rediss-sentinel", 15) == 0)) {
        out->scheme = slen == 15 ? DLOCK__SCHEME_REDISS : DLOCK__SCHEME_REDIS;
        out->sentinel = 1;
        rc = parse_redis(rest, out);
    } else if (slen == 4 && strncasecmp(text, "unix", 4) == 0) {
        out->scheme = DLOCK__SCHEME_UNIX;
        rc = parse_unix(rest, out);
    } else if (slen == 5 && strncasecmp(text, "https", 5) == 0) {
        out->scheme = DLOCK__SCHEME_HTTPS;
        rc = parse_http(text, rest, out, 443);
    } else if (slen == 4 && strncasecmp(text, "http", 4) == 0) {
        out->scheme = DLOCK__SCHEME_HTTP;
        rc = parse_http(text, rest, out, 80);
    } else {
        rc = dlock__err(DLOCK_EINVAL,
                        "URL scheme '%.*s' is not supported: use redis://, rediss://, unix://, "
                        "https://, http://, redis-sentinel:// or rediss-sentinel://",
                        (int)(slen > 20 ? 20 : slen), text);
    }
    if (rc != DLOCK_OK) {
        dlock__url_free(out);
    }
    return rc;
}

void dlock__url_free(dlock__url *u) {
    for (size_t i = 0; i < u->nextra; i++) {
        free(u->extra[i].host);
    }
    free(u->extra);
    free(u->master_name);
    free(u->host);
    free(u->path);
    free(u->username);
    if (u->password != NULL) {
        /* Do not leave the secret in freed heap memory where a core dump would show it. */
        explicit_bzero(u->password, strlen(u->password));
        free(u->password);
    }
    memset(u, 0, sizeof *u);
}

static void add_host(char *buf, size_t size, const char *host, int port) {
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void dlock__url_display(const dlock__url *u, char *buf, size_t size) {
    int tls = u->scheme == DLOCK__SCHEME_REDISS;
    switch (u->scheme) {
    case DLOCK__SCHEME_UNIX:
        snprintf(buf, size, "unix://%s", u->path);
        break;
    case DLOCK__SCHEME_HTTP:
    case DLOCK__SCHEME_HTTPS:
        snprintf(buf, size, "%s", u->path);
        return;
    default:
        snprintf(buf, size, "%s%s://", tls ? "rediss" : "redis", u->sentinel ? "-sentinel" : "");
        add_host(buf, size, u->host, u->port);
        for (size_t i = 0; i < u->nextra; i++) {
            size_t n = strlen(buf);
            snprintf(buf + n, size - n, ",");
            add_host(buf, size, u->extra[i].host, u->extra[i].port);
        }
    }
    size_t n = strlen(buf);
    if (u->db != 0) {
        snprintf(buf + n, size - n, "/%d", u->db);
        n = strlen(buf);
    }
    if (u->sentinel) {
        snprintf(buf + n, size - n, "#%.100s", u->master_name);
    }
}
