/* Lock: the seed's SET NX PX lock, with owner-checked release and extend as Lua scripts. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest lease or extension accepted: far beyond any sane lease, far below where adding it to
 * Redis's clock could overflow. */
#define MAX_LEASE_MS ((int64_t)1000000000000) /* 10^12 ms, about 31 years */

struct dlock_lock {
    dlock_client *client;
    char *id;
    size_t idlen;
    int64_t lease_ms;
    int attempts;
    int64_t delay_ms; /* -1 = no pause */
    char *token;      /* NULL when this handle holds nothing */
    size_t token_len;
};

static int check_lease(int64_t v, const char *what) {
    if (v < 0 || v > MAX_LEASE_MS) {
        return dlock__err(DLOCK_EINVAL, "%s must be from 1 to %lld ms, got %lld", what,
                          (long long)MAX_LEASE_MS, (long long)v);
    }
    return DLOCK_OK;
}

/* Validates the fields shared by dlock_lock_options and dlock_acquire_options (0 = inherit). */
static int check_settings(int64_t lease, int attempts, int64_t delay, const char *what) {
    int rc = check_lease(lease, what);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (attempts < 0) {
        return dlock__err(DLOCK_EINVAL, "attempts must be >= 1 (0 = default), got %d", attempts);
    }
    if (delay < -1 || delay > MAX_LEASE_MS) {
        return dlock__err(DLOCK_EINVAL, "delay_ms must be >= 0, or -1 for no pause, got %lld",
                          (long long)delay);
    }
    return DLOCK_OK;
}

int dlock_lock_new(dlock_lock **out, dlock_client *client, const char *id,
                   const dlock_lock_options *o) {
    dlock__err_clear();
    if (out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: out is NULL");
    }
    *out = NULL;
    if (client == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: client is NULL");
    }
    int rc = dlock__check_id(id, "dlock_lock_new");
    static const dlock_lock_options defaults;
    if (o == NULL) {
        o = &defaults;
    }
    if (rc != DLOCK_OK ||
        (rc = check_settings(o->lease_ms, o->attempts, o->delay_ms, "lease_ms")) != DLOCK_OK) {
        return rc;
    }
    dlock_lock *l = calloc(1, sizeof *l);
    if (l == NULL || (l->id = strdup(id)) == NULL) {
        free(l);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    l->client = client;
    l->idlen = strlen(id);
    l->lease_ms = o->lease_ms ? o->lease_ms : DLOCK__DEFAULT_LEASE_MS;
    l->attempts = o->attempts ? o->attempts : DLOCK__DEFAULT_ATTEMPTS;
    l->delay_ms = o->delay_ms ? o->delay_ms : DLOCK__DEFAULT_DELAY_MS;
    *out = l;
    return DLOCK_OK;
}

static void drop_token(dlock_lock *l) {
    free(l->token);
    l->token = NULL;
    l->token_len = 0;
}

void dlock_lock_free(dlock_lock *l) {
    if (l == NULL) {
        return;
    }
    drop_token(l);
    free(l->id);
    free(l);
}

/* After a SET whose reply was lost, asks (on a fresh connection) whether the key now holds our
 * token. Returns 1 if it does, 0 if not, or a negative code if Redis cannot tell us. */
static int set_took_effect(dlock_lock *l, const char *token, size_t token_len) {
    const char *argv[] = {"GET", l->id};
    size_t lens[] = {3, l->idlen};
    dlock__reply r;
    int rc = dlock__client_call(l->client, 2, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    int ours = r.type == DLOCK__REPLY_STR && r.len == token_len && memcmp(r.str, token, r.len) == 0;
    dlock__reply_clear(&r);
    return ours;
}

/* One SET NX PX. Returns OK, NOT_ACQUIRED or an error; never an error while holding the lock. */
static int try_set(dlock_lock *l, const char *token, size_t token_len, int64_t lease) {
    char px[24];
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)lease);
    const char *argv[] = {"SET", l->id, token, "NX", "PX", px};
    size_t lens[] = {3, l->idlen, token_len, 2, 2, (size_t)pxlen};
    dlock__reply r;
    int sent;
    int rc = dlock__client_call(l->client, 6, argv, lens, &r, &sent);
    if (rc != DLOCK_OK) {
        if (!sent) {
            return rc;
        }
        /* The SET may have been applied and its reply lost: find out before answering, so we
         * never report an error (and leak a held lock) or a success that is not true. */
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        int ours = set_took_effect(l, token, token_len);
        if (ours == 1) {
            return DLOCK_OK;
        }
        return dlock__err(rc, "%s; %s", saved,
                          ours == 0 ? "checked after reconnecting: this call does not hold the lock"
                                    : "could not check whether the SET took effect (the key "
                                      "expires with its lease if it did)");
    }
    if (r.type == DLOCK__REPLY_STR && r.len == 2 && memcmp(r.str, "OK", 2) == 0) {
        rc = DLOCK_OK;
    } else if (r.type == DLOCK__REPLY_NIL) {
        rc = DLOCK_NOT_ACQUIRED;
    } else {
        rc = dlock__reply_error(l->client, &r, "SET NX PX");
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock_lock_acquire(dlock_lock *l, const dlock_acquire_options *o) {
    dlock__err_clear();
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_acquire: lock is NULL");
    }
    static const dlock_acquire_options defaults;
    if (o == NULL) {
        o = &defaults;
    }
    int rc = check_settings(o->lease_ms, o->attempts, o->delay_ms, "lease_ms");
    if (rc != DLOCK_OK) {
        return rc;
    }
    int64_t lease = o->lease_ms ? o->lease_ms : l->lease_ms;
    int attempts = o->attempts ? o->attempts : l->attempts;
    int64_t delay = o->delay_ms ? o->delay_ms : l->delay_ms;

    char uuid[DLOCK__UUID_LEN + 1];
    const char *token = uuid;
    size_t token_len = DLOCK__UUID_LEN;
    if (o->token != NULL && o->token[0] != '\0') {
        token = o->token;
        token_len = strnlen(o->token, DLOCK__MAX_TOKEN_LEN + 1);
        if (token_len > DLOCK__MAX_TOKEN_LEN) {
            return dlock__err(DLOCK_EINVAL, "token is longer than %d bytes", DLOCK__MAX_TOKEN_LEN);
        }
    } else if ((rc = dlock__uuid4(uuid)) != DLOCK_OK) {
        return rc;
    }

    for (int i = 0; i < attempts; i++) {
        rc = try_set(l, token, token_len, lease);
        if (rc != DLOCK_NOT_ACQUIRED) {
            break;
        }
        if (i + 1 < attempts && delay > 0) {
            dlock__sleep_ms(delay); /* never after the last attempt (the seed sleeps there too) */
        }
    }
    if (rc != DLOCK_OK) {
        return rc; /* a token this handle held before stays, so it can still be released */
    }
    char *copy = malloc(token_len + 1);
    if (copy == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory (the lock was acquired and will expire)");
    }
    memcpy(copy, token, token_len);
    copy[token_len] = '\0';
    drop_token(l);
    l->token = copy;
    l->token_len = token_len;
    return DLOCK_OK;
}

int dlock_lock_release(dlock_lock *l) {
    dlock__err_clear();
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_release: lock is NULL");
    }
    if (l->token == NULL) {
        return DLOCK_NOT_HELD;
    }
    const char *argv[] = {l->id, l->token};
    size_t lens[] = {l->idlen, l->token_len};
    dlock__reply r;
    int rc = dlock__script_run(l->client, &dlock__script_release, 1, 2, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        rc = r.integer == 1 ? DLOCK_OK : DLOCK_NOT_HELD;
        drop_token(l);
    } else {
        rc = dlock__reply_error(l->client, &r, "release");
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock_lock_extend(dlock_lock *l, int64_t ms) {
    dlock__err_clear();
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_extend: lock is NULL");
    }
    if (ms <= 0 || ms > MAX_LEASE_MS) {
        return dlock__err(DLOCK_EINVAL, "extend: ms must be from 1 to %lld, got %lld",
                          (long long)MAX_LEASE_MS, (long long)ms);
    }
    if (l->token == NULL) {
        return DLOCK_NOT_HELD;
    }
    char add[24];
    int addlen = snprintf(add, sizeof add, "%lld", (long long)ms);
    const char *argv[] = {l->id, l->token, add};
    size_t lens[] = {l->idlen, l->token_len, (size_t)addlen};
    dlock__reply r;
    int rc = dlock__script_run(l->client, &dlock__script_extend, 1, 3, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        if (r.integer == 0) {
            rc = DLOCK_NOT_HELD;
            drop_token(l);
        }
    } else {
        rc = dlock__reply_error(l->client, &r, "extend");
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock_lock_status(dlock_lock *l, dlock_state *out) {
    dlock__err_clear();
    if (out != NULL) {
        *out = DLOCK_FREE;
    }
    if (l == NULL || out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_status: %s is NULL",
                          l == NULL ? "lock" : "out");
    }
    if (l->token == NULL) {
        return DLOCK_OK;
    }
    const char *argv[] = {"GET", l->id};
    size_t lens[] = {3, l->idlen};
    dlock__reply r;
    int rc = dlock__client_call(l->client, 2, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_STR || r.type == DLOCK__REPLY_NIL) {
        if (r.type == DLOCK__REPLY_STR && r.len == l->token_len &&
            memcmp(r.str, l->token, r.len) == 0) {
            *out = DLOCK_ACQUIRED;
        }
    } else {
        rc = dlock__reply_error(l->client, &r, "status (GET)");
    }
    dlock__reply_clear(&r);
    return rc;
}

const char *dlock_lock_id(const dlock_lock *l) {
    return l != NULL ? l->id : NULL;
}

const char *dlock_lock_token(const dlock_lock *l) {
    return l != NULL ? l->token : NULL;
}

int dlock_lock_inspect(dlock_client *client, const char *id, const char *token,
                       dlock_lock_info *out) {
    dlock__err_clear();
    if (client == NULL || out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_inspect: %s is NULL",
                          client == NULL ? "client" : "out");
    }
    memset(out, 0, sizeof *out);
    int rc = dlock__check_id(id, "dlock_lock_inspect");
    if (rc != DLOCK_OK) {
        return rc;
    }
    const char *argv[] = {id};
    size_t lens[] = {strlen(id)};
    dlock__reply r;
    if ((rc = dlock__script_run(client, &dlock__script_inspect, 1, 1, argv, lens, &r, NULL)) !=
        DLOCK_OK) {
        return rc;
    }
    if (r.type != DLOCK__REPLY_ARRAY || r.elements != 2 || r.element[1].type != DLOCK__REPLY_INT ||
        (r.element[0].type != DLOCK__REPLY_STR && r.element[0].type != DLOCK__REPLY_NIL)) {
        rc = dlock__reply_error(client, &r, "inspect");
    } else if (r.element[0].type == DLOCK__REPLY_STR) {
        const dlock__reply *v = &r.element[0];
        out->held = 1;
        out->remaining_ms = r.element[1].integer;
        size_t n = v->len < sizeof out->holder_token - 1 ? v->len : sizeof out->holder_token - 1;
        memcpy(out->holder_token, v->str, n);
        out->token_matches =
            token != NULL && strlen(token) == v->len && memcmp(token, v->str, v->len) == 0;
    }
    dlock__reply_clear(&r);
    return rc;
}
