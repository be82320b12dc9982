/* The client: parsed settings plus a small pool of connections. Each call borrows a connection
 * for its round trip, so any number of threads can share one client without waiting on each
 * other's replies; idle connections (at most pool_size) are kept for reuse. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_opt(const char *s, int *oom) {
    if (s == NULL) {
        return NULL;
    }
    char *p = strdup(s);
    if (p == NULL) {
        *oom = 1;
    }
    return p;
}

static void free_secret(char *s) {
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void config_free(dlock__config *cfg) {
    dlock__tls_ctx_free(cfg);
#ifdef DLOCK_HAVE_REST
    dlock__rest_shared_free(cfg);
#endif
    dlock__url_free(&cfg->url);
    free(cfg->username);
    free_secret(cfg->password);
    free_secret(cfg->rest_token);
    free(cfg->tls_ca_file);
    free(cfg->tls_ca_dir);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->tls_server_name);
    free(cfg->display);
    memset(cfg, 0, sizeof *cfg);
}

static int check_timeout(int v, const char *name) {
    if (v < 0) {
        return dlock__err(DLOCK_EINVAL, "option %s must be >= 0 (0 = default), got %d", name, v);
    }
    return DLOCK_OK;
}

static int config_init(dlock__config *cfg, const char *url, const dlock_client_options *o) {
    static const dlock_client_options defaults;
    if (o == NULL) {
        o = &defaults;
    }
    int rc;
    if ((rc = check_timeout(o->connect_timeout_ms, "connect_timeout_ms")) != DLOCK_OK ||
        (rc = check_timeout(o->command_timeout_ms, "command_timeout_ms")) != DLOCK_OK) {
        return rc;
    }
    if (o->pool_size < 0) {
        return dlock__err(DLOCK_EINVAL, "option pool_size must be >= 0 (0 = default), got %d",
                          o->pool_size);
    }
    if ((rc = dlock__url_parse(url, &cfg->url)) != DLOCK_OK) {
        return rc;
    }
    cfg->connect_timeout_ms =
        o->connect_timeout_ms ? o->connect_timeout_ms : DLOCK__DEFAULT_CONNECT_TIMEOUT_MS;
    cfg->command_timeout_ms =
        o->command_timeout_ms ? o->command_timeout_ms : DLOCK__DEFAULT_COMMAND_TIMEOUT_MS;
    cfg->tls_insecure = o->tls_insecure;
    int oom = 0;
    cfg->username = dup_opt(o->username != NULL ? o->username : cfg->url.username, &oom);
    cfg->password = dup_opt(o->password != NULL ? o->password : cfg->url.password, &oom);
    cfg->tls_ca_file = dup_opt(o->tls_ca_file, &oom);
    cfg->tls_ca_dir = dup_opt(o->tls_ca_dir, &oom);
    cfg->tls_cert_file = dup_opt(o->tls_cert_file, &oom);
    cfg->tls_key_file = dup_opt(o->tls_key_file, &oom);
    cfg->tls_server_name = dup_opt(o->tls_server_name, &oom);
    cfg->rest_token = dup_opt(o->rest_token, &oom);

    const dlock__url *u = &cfg->url;
    char display[600];
    switch (u->scheme) {
    case DLOCK__SCHEME_UNIX:
        snprintf(display, sizeof display, "unix://%s", u->path);
        break;
    case DLOCK__SCHEME_HTTP:
    case DLOCK__SCHEME_HTTPS:
        snprintf(display, sizeof display, "%s", u->path);
        break;
    default:
        snprintf(display, sizeof display, strchr(u->host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                 u->scheme == DLOCK__SCHEME_REDISS ? "rediss" : "redis", u->host, u->port);
    }
    if (u->db != 0 && u->scheme != DLOCK__SCHEME_HTTP && u->scheme != DLOCK__SCHEME_HTTPS) {
        size_t n = strlen(display);
        snprintf(display + n, sizeof display - n, "/%d", u->db);
    }
    cfg->display = dup_opt(display, &oom);
    if (oom) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    if (u->scheme == DLOCK__SCHEME_HTTP || u->scheme == DLOCK__SCHEME_HTTPS) {
#ifndef DLOCK_HAVE_REST
        return dlock__err(DLOCK_EINVAL,
                          "%s: the Upstash REST transport (http:// and https:// URLs) is not "
                          "available in this build; use redis://, rediss:// or unix://",
                          cfg->display);
#else
        return dlock__rest_shared_new(cfg); /* libcurl does TLS for REST: no SSL_CTX of ours */
#endif
    }
    if (u->scheme == DLOCK__SCHEME_REDISS && (rc = dlock__tls_ctx_new(cfg)) != DLOCK_OK) {
        return dlock__err_prefix(rc, "%s", cfg->display);
    }
    return DLOCK_OK;
}

int dlock_client_open(dlock_client **out, const char *url, const dlock_client_options *options) {
    dlock__err_clear();
    if (out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_client_open: out is NULL");
    }
    *out = NULL;
    dlock_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    int rc = config_init(&c->cfg, url, options);
    if (rc != DLOCK_OK) {
        config_free(&c->cfg);
        free(c);
        return rc;
    }
    c->tp = &dlock__resp_transport;
#ifdef DLOCK_HAVE_REST
    if (c->cfg.url.scheme == DLOCK__SCHEME_HTTP || c->cfg.url.scheme == DLOCK__SCHEME_HTTPS) {
        c->tp = &dlock__rest_transport;
    }
#endif
    c->pool_size =
        options != NULL && options->pool_size > 0 ? options->pool_size : DLOCK__DEFAULT_POOL_SIZE;
    c->idle = calloc((size_t)c->pool_size, sizeof *c->idle);
    if (c->idle == NULL) {
        config_free(&c->cfg);
        free(c);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    /* Connect once now, so a wrong address, certificate or password is reported here. */
    dlock__conn *conn;
    if ((rc = c->tp->connect(&c->cfg, &conn)) != DLOCK_OK) {
        dlock_client_close(c);
        return rc;
    }
    c->idle[c->nidle++] = conn;
    *out = c;
    return DLOCK_OK;
}

int dlock_client_open_env(dlock_client **out, const dlock_client_options *options) {
    const char *rest = getenv("UPSTASH_REDIS_REST_URL");
    if (rest != NULL && rest[0] != '\0') {
        dlock_client_options o = {0};
        if (options != NULL) {
            o = *options;
        }
        if (o.rest_token == NULL) {
            o.rest_token = getenv("UPSTASH_REDIS_REST_TOKEN");
        }
        return dlock_client_open(out, rest, &o);
    }
    const char *url = getenv("REDIS_URL");
    if (url == NULL || url[0] == '\0') {
        url = "redis://127.0.0.1:6379";
    }
    return dlock_client_open(out, url, options);
}

const char *dlock_client_server(const dlock_client *client) {
    return client != NULL ? client->cfg.display : NULL;
}

void dlock_client_close(dlock_client *c) {
    if (c == NULL) {
        return;
    }
    dlock__quorum_free(c->quorum); /* Redlock: the member clients (NULL for one server) */
    for (int i = 0; i < c->nidle; i++) {
        c->tp->close(c->idle[i]);
    }
    free(c->idle);
    pthread_mutex_destroy(&c->mu);
    config_free(&c->cfg);
    free(c);
}

/* Takes an idle connection that still looks healthy, or opens a new one. */
static int borrow(dlock_client *c, dlock__conn **out) {
    for (;;) {
        dlock__conn *conn = NULL;
        pthread_mutex_lock(&c->mu);
        if (c->nidle > 0) {
            conn = c->idle[--c->nidle];
        }
        pthread_mutex_unlock(&c->mu);
        if (conn == NULL) {
            return c->tp->connect(&c->cfg, out);
        }
        if (c->tp->alive(conn)) {
            *out = conn;
            return DLOCK_OK;
        }
        c->tp->close(conn);
    }
}

static void give_back(dlock_client *c, dlock__conn *conn) {
    pthread_mutex_lock(&c->mu);
    if (c->nidle < c->pool_size) {
        c->idle[c->nidle++] = conn;
        conn = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (conn != NULL) {
        c->tp->close(conn);
    }
}

int dlock__client_exec(dlock_client *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                       int *sent) {
    int dummy;
    if (sent == NULL) {
        sent = &dummy;
    }
    *sent = 0;
    dlock__conn *conn;
    int rc = borrow(c, &conn);
    if (rc != DLOCK_OK) {
        return rc; /* connect already named the server */
    }
    rc = c->tp->exec(conn, cmds, n, replies, dlock__deadline_in(c->cfg.command_timeout_ms), sent);
    if (rc != DLOCK_OK) {
        /* The stream position is unknown after a failure: never reuse this connection. */
        c->tp->close(conn);
        if (rc == DLOCK_ETIMEDOUT) {
            return dlock__err(rc, "%s: no reply within command_timeout_ms (%d ms)", c->cfg.display,
                              c->cfg.command_timeout_ms);
        }
        return dlock__err_prefix(rc, "%s", c->cfg.display);
    }
    give_back(c, conn);
    return DLOCK_OK;
}

int dlock__client_call(dlock_client *c, int argc, const char **argv, const size_t *lens,
                       dlock__reply *reply, int *sent) {
    dlock__cmd cmd = {argc, argv, lens};
    return dlock__client_exec(c, &cmd, 1, reply, sent);
}

int dlock__reply_error(const dlock_client *c, const dlock__reply *r, const char *what) {
    if (r->type == DLOCK__REPLY_ERROR) {
        int rc = strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "NOPERM", 6) == 0
                     ? DLOCK_EAUTH
                     : DLOCK_ESERVER;
        return dlock__err(rc, "%s: %s: Redis replied: %s", c->cfg.display, what, r->str);
    }
    return dlock__err(DLOCK_EPROTO, "%s: %s: unexpected reply type %d", c->cfg.display, what,
                      (int)r->type);
}

int dlock__check_id(const char *id, const char *what) {
    if (id == NULL) {
        return dlock__err(DLOCK_EINVAL, "%s: id is NULL", what);
    }
    size_t n = strnlen(id, DLOCK__MAX_ID_LEN + 1);
    if (n == 0) {
        return dlock__err(DLOCK_EINVAL, "%s: id is empty", what);
    }
    if (n > DLOCK__MAX_ID_LEN) {
        return dlock__err(DLOCK_EINVAL, "%s: id is longer than %d bytes", what, DLOCK__MAX_ID_LEN);
    }
    return DLOCK_OK;
}
