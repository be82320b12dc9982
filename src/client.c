/* The client: parsed settings, and the routing of each command to a server: the one server of
 * the URL (a pool of connections, pool.c), or on a Redis Cluster the master of the command's
 * slot (cluster.c). The URL's server says which it is at open. */
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
    dlock__url_free(&cfg->url);
    free(cfg->username);
    free_secret(cfg->password);
    free_secret(cfg->rest_token);
    free(cfg->sentinel_username);
    free_secret(cfg->sentinel_password);
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
    cfg->sentinel_username = dup_opt(o->sentinel_username, &oom);
    cfg->sentinel_password = dup_opt(o->sentinel_password, &oom);

    const dlock__url *u = &cfg->url;
    char display[600];
    dlock__url_display(u, display, sizeof display);
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
#endif
    }
    return DLOCK_OK;
}

static int probe_cluster(dlock_client *c, int *yes) {
    *yes = 0;
    if (c->tp != &dlock__resp_transport || c->cfg.url.scheme == DLOCK__SCHEME_UNIX) {
        return DLOCK_OK;
    }
    const char *argv[] = {"INFO", "cluster"};
    size_t lens[] = {4, 7};
    dlock__cmd cmd = {2, argv, lens};
    dlock__reply r;
    int sent;
    int rc = dlock__node_exec(c->node, &cmd, 1, &r, dlock__deadline_in(c->cfg.command_timeout_ms),
                              &sent);
    if (rc == DLOCK_OK) {
        *yes = r.type == DLOCK__REPLY_STR && strstr(r.str, "cluster_enabled:1") != NULL;
        dlock__reply_clear(&r);
    }
    return rc;
}

/* Connects once now, so a wrong address, certificate or password is reported here; then finds
 * out whether this is a cluster and, if so, reads its slot map. */
static int client_connect(dlock_client *c, int pool_size) {
    const dlock__url *u = &c->cfg.url;
    if (u->sentinel) {
        return dlock__sentinel_new(&c->cfg, c->tp, pool_size, &c->sentinel);
    }
    /* The seeds in turn, until one answers. */
    int rc = DLOCK_ECONNECT;
    for (size_t i = 0; i <= u->nextra && c->node == NULL; i++) {
        const char *host = i > 0 ? u->extra[i - 1].host : NULL;
        int port = i > 0 ? u->extra[i - 1].port : 0;
        dlock__conn *conn;
        if ((rc = dlock__node_new(&c->cfg, c->tp, pool_size, host, port, &c->node)) != DLOCK_OK) {
            return rc;
        }
        if ((rc = dlock__node_connect(c->node, &conn)) != DLOCK_OK) {
            dlock__node_free(c->node);
            c->node = NULL;
            continue;
        }
        dlock__node_give_back(c->node, conn);
    }
    if (c->node == NULL) {
        return u->nextra > 0 ? dlock__err_prefix(rc, "no seed answered; the last") : rc;
    }
    int cluster;
    if ((rc = probe_cluster(c, &cluster)) != DLOCK_OK) {
        return rc;
    }
    if (!cluster && u->nextra > 0) {
        return dlock__err(DLOCK_EINVAL,
                          "%s: several hosts are seeds of a Redis Cluster, but %s is not a "
                          "cluster node (for Sentinel use redis-sentinel://)",
                          c->cfg.display, dlock__node_display(c->node));
    }
    if (cluster) {
        if ((rc = dlock__cluster_new(&c->cfg, c->tp, pool_size, c->node, &c->cluster)) !=
            DLOCK_OK) {
            return rc;
        }
        c->node = NULL; /* the cluster owns it now */
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
    c->tp = &dlock__resp_transport;
    int rc = config_init(&c->cfg, url, options);
#ifdef DLOCK_HAVE_REST
    if (c->cfg.url.scheme == DLOCK__SCHEME_HTTP || c->cfg.url.scheme == DLOCK__SCHEME_HTTPS) {
        c->tp = &dlock__rest_transport;
    }
#endif
    if (rc == DLOCK_OK && (rc = c->tp->init(&c->cfg, &c->cfg.tp_state)) != DLOCK_OK) {
        dlock__err_prefix(rc, "%s", c->cfg.display);
    }
    if (rc != DLOCK_OK) {
        c->tp->fini(c->cfg.tp_state);
        config_free(&c->cfg);
        free(c);
        return rc;
    }
    int pool_size =
        options != NULL && options->pool_size > 0 ? options->pool_size : DLOCK__DEFAULT_POOL_SIZE;
    if ((rc = client_connect(c, pool_size)) != DLOCK_OK) {
        dlock_client_close(c);
        return rc;
    }
    *out = c;
    return DLOCK_OK;
}

const char *dlock_env_url(const char **source) {
    static const char *const vars[] = {"UPSTASH_REDIS_REST_URL", "REDIS_URL"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0') {
            if (source != NULL) {
                *source = vars[i];
            }
            return v;
        }
    }
    if (source != NULL) {
        *source = "the default";
    }
    return "redis://127.0.0.1:6379";
}

int dlock_client_open_env(dlock_client **out, const dlock_client_options *options) {
    const char *source, *url = dlock_env_url(&source);
    if (strcmp(source, "UPSTASH_REDIS_REST_URL") == 0) {
        dlock_client_options o = {0};
        if (options != NULL) {
            o = *options;
        }
        if (o.rest_token == NULL) {
            o.rest_token = getenv("UPSTASH_REDIS_REST_TOKEN");
        }
        return dlock_client_open(out, url, &o);
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
    dlock__cluster_free(c->cluster);
    dlock__sentinel_free(c->sentinel);
    dlock__node_free(c->node);
    if (c->tp != NULL) { /* a Redlock client has no transport of its own */
        c->tp->fini(c->cfg.tp_state);
    }
    config_free(&c->cfg);
    free(c);
}

int dlock__client_exec_key(dlock_client *c, int key, const dlock__cmd *cmds, size_t n,
                           dlock__reply *replies, int *sent) {
    int dummy;
    if (sent == NULL) {
        sent = &dummy;
    }
    int64_t deadline = dlock__deadline_in(c->cfg.command_timeout_ms);
    if (c->cluster != NULL) {
        return dlock__cluster_exec(c->cluster, key, cmds, n, replies, deadline, sent);
    }
    if (c->sentinel != NULL) {
        return dlock__sentinel_exec(c->sentinel, cmds, n, replies, deadline, sent);
    }
    return dlock__node_exec(c->node, cmds, n, replies, deadline, sent);
}

dlock__node *dlock__client_node(dlock_client *c) {
    return c->sentinel != NULL ? dlock__sentinel_master(c->sentinel) : c->node;
}

dlock__node *dlock__client_split_node(dlock_client *c) {
    return c->cluster == NULL && c->sentinel == NULL && c->quorum == NULL && c->tp->send != NULL
               ? c->node
               : NULL;
}

int dlock__client_exec(dlock_client *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                       int *sent) {
    return dlock__client_exec_key(c, 0, cmds, n, replies, sent);
}

int dlock__client_call(dlock_client *c, int argc, const char **argv, const size_t *lens,
                       dlock__reply *reply, int *sent) {
    dlock__cmd cmd = {argc, argv, lens};
    return dlock__client_exec(c, &cmd, 1, reply, sent);
}

int dlock__reply_error(const dlock_client *c, const dlock__reply *r, const char *what) {
    if (r->type == DLOCK__REPLY_ERROR) {
        return dlock__err(dlock__reply_error_rc(r), "%s: %s: Redis replied: %s", c->cfg.display,
                          what, r->str);
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
