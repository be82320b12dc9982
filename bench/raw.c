/* The limit: the library's Redis commands sent with raw hiredis and nothing around it. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The scripts the library sends, read at run time from src/lua (DLOCK_LUA_DIR, set by CMake:
 * the same files the library embeds), so the raw-hiredis limit sends exactly the Redis work the
 * library sends even as the scripts change. mode_cycle checks that the library really ran the
 * same release script (SCRIPT EXISTS after a library release) and says so in the table if not. */
#ifndef DLOCK_LUA_DIR
#define DLOCK_LUA_DIR "src/lua"
#endif

static char *read_script(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.lua", DLOCK_LUA_DIR, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        die("cannot read %s: %s", path, strerror(errno));
    }
    static const size_t max = 1 << 17;
    char *body = malloc(max);
    size_t n = body != NULL ? fread(body, 1, max - 1, f) : 0;
    fclose(f);
    if (body == NULL || n == 0) {
        die("cannot read %s", path);
    }
    body[n] = '\0';
    return body;
}

void load_scripts(bench_scripts *lua) {
    lua->release = read_script("queue_release");
    lua->extend = read_script("extend");
    lua->incr = read_script("incr_expire");
}

void free_scripts(bench_scripts *lua) {
    free(lua->release);
    free(lua->extend);
    free(lua->incr);
    memset(lua, 0, sizeof *lua);
}

const char *transport_of(const char *url) {
    if (strncmp(url, "unix:", 5) == 0) {
        return "unix";
    }
    if (strncmp(url, "rediss:", 7) == 0) {
        return "tls";
    }
    if (strncmp(url, "http:", 5) == 0 || strncmp(url, "https:", 6) == 0) {
        return "rest";
    }
    return "tcp";
}

int url_endpoint(const char *url, bench_endpoint *ep) {
    memset(ep, 0, sizeof *ep);
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(ep->path, sizeof ep->path, "%s", url + 7);
        ep->path[strcspn(ep->path, "?")] = '\0';
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        return 1;
    }
    char buf[512];
    const char *h = strchr(url + 8, '@');
    snprintf(buf, sizeof buf, "%s", h != NULL ? h + 1 : url + 8);
    buf[strcspn(buf, "/")] = '\0';
    ep->port = 6379;
    char *colon = strrchr(buf, ':');
    if (colon != NULL && strchr(buf, ']') < colon) {
        *colon = '\0';
        char *end;
        errno = 0;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
            return -1;
        }
        ep->port = (int)port;
    }
    char *host = buf;
    if (host[0] == '[') {
        host++;
        host[strcspn(host, "]")] = '\0';
    }
    snprintf(ep->host, sizeof ep->host, "%s", host);
    return 0;
}

redisContext *raw_connect(const char *url) {
    struct timeval tv = {5, 0};
    bench_endpoint ep;
    int rc = url_endpoint(url, &ep);
    if (rc > 0) {
        return NULL;
    }
    if (rc < 0) {
        die("raw connect %s: bad port", url);
    }
    redisContext *c = ep.path[0] != '\0' ? redisConnectUnixWithTimeout(ep.path, tv)
                                         : redisConnectWithTimeout(ep.host, ep.port, tv);
    if (c == NULL || c->err) {
        die("raw connect %s: %s", url, c != NULL ? c->errstr : "out of memory");
    }
    redisSetTimeout(c, tv);
    return c;
}

redisReply *raw_cmd(redisContext *c, int argc, const char **argv) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL) {
        die("raw command %s: %s", argv[0], c->errstr);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        die("raw command %s: %s", argv[0], r->str);
    }
    return r;
}

void raw_do(redisContext *c, int argc, const char **argv) {
    freeReplyObject(raw_cmd(c, argc, argv));
}

static void script_load(redisContext *c, const char *body, char sha[41]) {
    const char *argv[] = {"SCRIPT", "LOAD", body};
    redisReply *r = raw_cmd(c, 3, argv);
    snprintf(sha, 41, "%s", r->str);
    freeReplyObject(r);
}

void raw_init(raw_ctx *x, const bench_scripts *lua, redisContext *c, const char *key) {
    memset(x, 0, sizeof *x);
    x->c = c;
    snprintf(x->key, sizeof x->key, "%s", key);
    script_load(c, lua->release, x->sha_release);
    script_load(c, lua->extend, x->sha_extend);
    script_load(c, lua->incr, x->sha_incr);
    x->rng = 0x9e3779b97f4a7c15u;
}

redisContext *raw_open_beside(raw_ctx *x, const bench_scripts *lua, const char *url,
                              const char *key) {
    redisContext *c = raw_connect(url);
    if (c != NULL) {
        char rkey[128];
        snprintf(rkey, sizeof rkey, "%s:raw", key);
        raw_init(x, lua, c, rkey);
    }
    return c;
}

/* A fresh 36-byte token per acquire, like the library's UUID (but no getrandom: the limit). */
void raw_new_token(raw_ctx *x) {
    snprintf(x->token, sizeof x->token, "00000000-0000-4000-8000-%012llx",
             (unsigned long long)(++x->seq & 0xffffffffffffu));
}

int raw_set_nx(raw_ctx *x, const char *key) {
    const char *argv[] = {"SET", key, x->token, "NX", "PX", "10000"};
    redisReply *r = raw_cmd(x->c, 6, argv);
    int ok = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

/* The library's release for ids that have sibling keys (all ids without braces): the hand-off
 * script with the queue, waiters, fence and holder keys "{ID}:NAME" and the grant channel prefix.
 */
void raw_release(raw_ctx *x, const char *key) {
    char q[128], w[128], fe[128], ho[128], ch[128];
    snprintf(q, sizeof q, "{%s}:queue", key);
    snprintf(w, sizeof w, "{%s}:waiters", key);
    snprintf(fe, sizeof fe, "{%s}:fence", key);
    snprintf(ho, sizeof ho, "{%s}:holder", key);
    snprintf(ch, sizeof ch, "{%s}:grant:", key);
    const char *argv[] = {"EVALSHA", x->sha_release, "5", key, q, w, fe, ho, x->token, ch};
    raw_do(x->c, 10, argv);
}

int step_raw_ping(void *ctx, int phase) {
    (void)phase;
    raw_ctx *x = ctx;
    const char *argv[] = {"PING"};
    raw_do(x->c, 1, argv);
    return 0;
}

int step_raw_cycle(void *ctx, int phase) {
    raw_ctx *x = ctx;
    if (phase == 0) {
        raw_new_token(x);
        if (!raw_set_nx(x, x->key)) {
            fprintf(stderr, "raw SET NX: key %s is taken\n", x->key);
            return 1;
        }
    } else {
        raw_release(x, x->key);
    }
    return 0;
}
