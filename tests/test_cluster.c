/* test_cluster: dlock on a Redis Cluster of 3 masters + 3 replicas (harness/cluster-env.sh).
 *
 * One URL of any node is enough: the client finds the cluster, routes each id to the master of
 * its slot (CRC16, hash tags), follows MOVED after a slot migration and ASK during one, retries
 * TRYAGAIN, subscribes with SSUBSCRIBE at the channel's master and follows it when its slot
 * moves, reports CLUSTERDOWN as a server error, and works again through the same URL after a
 * master is killed and its replica promoted. The test drives migrations and failures by hand
 * with raw hiredis connections to the nodes. The failover test runs last: it changes which nodes
 * are masters. */
#include "internal.h"
#include "support.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES 6

/* ---- raw access to the nodes ---- */

static int node_port(int n) {
    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_CLUSTER_PORT_%d", n);
    return dlt_env_int(key);
}

static redisReply *on_port(int port, const char *fmt, ...) {
    redisContext *c = dlt_raw_connect(port, NULL);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* 1 if redis on port answers at all (a killed node does not). */
static int node_up(int port) {
    struct timeval tv = {0, 300000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int up = c != NULL && !c->err;
    redisFree(c);
    return up;
}

/* The port of the master of `slot`, as node `ask_port` sees it (0 if uncovered). */
static int master_of(int ask_port, unsigned slot) {
    redisReply *r = on_port(ask_port, "CLUSTER SLOTS");
    assert_non_null(r);
    int port = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if ((unsigned)e->element[0]->integer <= slot && slot <= (unsigned)e->element[1]->integer) {
            port = (int)e->element[2]->element[1]->integer;
        }
    }
    freeReplyObject(r);
    return port;
}

/* A node that is up, to ask about the cluster. */
static int any_live_port(void) {
    for (int n = 1; n <= NODES; n++) {
        if (node_up(node_port(n))) {
            return node_port(n);
        }
    }
    fail_msg("no cluster node is up");
    return 0;
}

static int master_of_slot(unsigned slot) {
    return master_of(any_live_port(), slot);
}

/* The ports of the current masters. */
static int masters(int out[NODES]) {
    int k = 0;
    for (int n = 1; n <= NODES; n++) {
        int p = node_port(n);
        if (!node_up(p)) {
            continue;
        }
        redisReply *r = on_port(p, "ROLE");
        if (r != NULL && r->type == REDIS_REPLY_ARRAY &&
            strcmp(r->element[0]->str, "master") == 0) {
            out[k++] = p;
        }
        freeReplyObject(r);
    }
    return k;
}

static char *node_id(int port) {
    redisReply *r = on_port(port, "CLUSTER MYID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *id = strdup(r->str);
    freeReplyObject(r);
    return id;
}

/* Waits until every live node agrees on cluster_state:ok and, for slot (if >= 0), on its owner
 * `port`. */
static void wait_converged(int slot, int port) {
    int64_t until = dlt_now_ms() + dlt_slow(20000);
    for (;;) {
        int ok = 1;
        for (int n = 1; n <= NODES && ok; n++) {
            int p = node_port(n);
            if (!node_up(p)) {
                continue;
            }
            redisReply *r = on_port(p, "CLUSTER INFO");
            ok = r != NULL && r->type == REDIS_REPLY_STRING &&
                 strstr(r->str, "cluster_state:ok") != NULL;
            freeReplyObject(r);
            if (ok && slot >= 0) {
                ok = master_of(p, (unsigned)slot) == port;
            }
        }
        if (ok) {
            return;
        }
        if (dlt_now_ms() > until) {
            fail_msg("the cluster did not converge (slot %d on port %d)", slot, port);
        }
        dlt_sleep_ms(50);
    }
}

static unsigned slot_of(const char *key) {
    return dlock__key_slot(key, strlen(key));
}

/* An id whose slot is served by master `port`, or (port 0) any fresh id. */
static const char *id_on(int port, const char *tag) {
    for (int i = 0; i < 1000; i++) {
        const char *id = dlt_id(tag);
        if (port == 0 || master_of_slot(slot_of(id)) == port) {
            return id;
        }
    }
    fail_msg("no id found for master %d", port);
    return NULL;
}

/* ---- slot migration by hand, as redis-cli --cluster reshard does it ---- */

static void migration_begin(unsigned slot, int from, int to) {
    char *from_id = node_id(from), *to_id = node_id(to);
    freeReplyObject(on_port(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id));
    freeReplyObject(on_port(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id));
    free(from_id);
    free(to_id);
}

/* The node's TLS port: with tls-cluster on, MIGRATE talks TLS to the target. */
static int tls_port(int port) {
    redisReply *r = on_port(port, "CONFIG GET tls-port");
    assert_true(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    int p = atoi(r->element[1]->str);
    freeReplyObject(r);
    assert_true(p > 0);
    return p;
}

static void move_key(int from, int to, const char *key) {
    redisReply *r = on_port(from, "MIGRATE 127.0.0.1 %d %s 0 5000", tls_port(to), key);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        fail_msg("MIGRATE %s: %s", key, r->str);
    }
    freeReplyObject(r);
}

/* Moves every remaining key of the slot and hands it to `to` on every master. */
static void migration_finish(unsigned slot, int from, int to) {
    redisReply *keys = on_port(from, "CLUSTER GETKEYSINSLOT %u 1000", slot);
    assert_non_null(keys);
    for (size_t i = 0; i < keys->elements; i++) {
        move_key(from, to, keys->element[i]->str);
    }
    freeReplyObject(keys);
    char *to_id = node_id(to);
    int m[NODES], k = masters(m);
    freeReplyObject(on_port(to, "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    freeReplyObject(on_port(from, "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    for (int i = 0; i < k; i++) {
        if (m[i] != to && m[i] != from) {
            freeReplyObject(on_port(m[i], "CLUSTER SETSLOT %u NODE %s", slot, to_id));
        }
    }
    free(to_id);
    wait_converged((int)slot, to);
}

/* PTTL of key on the importing node of a migration, which serves it only after ASKING. */
static long long pttl_asking(int port, const char *key) {
    redisContext *c = dlt_raw_connect(port, NULL);
    freeReplyObject(dlt_raw_cmd(c, "ASKING"));
    long long t = dlt_raw_pttl(c, key, strlen(key));
    redisFree(c);
    return t;
}

static int other_master(int port) {
    int m[NODES], k = masters(m);
    for (int i = 0; i < k; i++) {
        if (m[i] != port) {
            return m[i];
        }
    }
    fail_msg("no second master");
    return 0;
}

static dlock_client *open_cluster(void) {
    return dlt_open(dlt_env_require("DLOCK_TEST_CLUSTER_URL"), NULL);
}

/* ---- tests ---- */

/* The slot function against the server's own CLUSTER KEYSLOT, hash tags included. */
static void test_key_slot(void **state) {
    (void)state;
    const char *keys[] = {"foo",
                          "bar",
                          "{user1000}.following",
                          "{}",
                          "{a",
                          "a{b}c{d}",
                          "{{a}}",
                          "x{}y{z}",
                          "123456789",
                          "dlock:grant:{id}",
                          "\xff\xfe binary",
                          ""};
    int port = node_port(1);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        redisReply *r = on_port(port, "CLUSTER KEYSLOT %b", keys[i], strlen(keys[i]));
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        if ((long long)slot_of(keys[i]) != r->integer) {
            fail_msg("slot of '%s': dlock %u, Redis %lld", keys[i], slot_of(keys[i]), r->integer);
        }
        freeReplyObject(r);
    }
    /* Every key of one id shares its slot, so each script stays on one node. */
    assert_int_equal(slot_of("lock-7"), slot_of("{lock-7}:fence"));
}

/* One URL, ids on every master: acquire, status, extend, release all reach the right node. */
/* Acquire, status, extend and release of one id on each master, through client c, checked on
 * the master itself. */
static void lock_on_every_master(dlock_client *c) {
    int m[NODES], k = masters(m);
    assert_int_equal(k, 3);
    for (int i = 0; i < k; i++) {
        const char *id = id_on(m[i], "spread");
        dlock_lock_options o = {.fencing = i == 1};
        dlock_lock *l = dlt_lock_new(c, id, &o);
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        redisContext *raw = dlt_raw_connect(m[i], NULL);
        char *v = dlt_raw_get(raw, id, strlen(id), NULL);
        assert_non_null(v);
        assert_string_equal(v, dlock_lock_token(l));
        free(v);
        dlock_state st;
        dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
        assert_int_equal(st, DLOCK_ACQUIRED);
        dlt_assert_rc(dlock_lock_extend(l, 5000), DLOCK_OK);
        assert_true(dlt_raw_pttl(raw, id, strlen(id)) > 10000);
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        assert_false(dlt_raw_exists(raw, id, strlen(id)));
        redisFree(raw);
        dlock_lock_free(l);
    }
}

static void test_ids_on_every_master(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    lock_on_every_master(c);
    dlock_client_close(c);
}

/* Seeds: the first is down, the second answers. */
static void test_seed_list(void **state) {
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d,127.0.0.1:%d", dlt_closed_port(), node_port(2));
    dlock_client *c = dlt_open(url, NULL);
    dlock_lock *l = dlt_lock_new(c, id_on(0, "seeds"), NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* A replica's URL is as good as a master's. */
static void test_open_through_replica(void **state) {
    (void)state;
    int m[NODES], k = masters(m), replica = 0;
    for (int n = 1; n <= NODES && replica == 0; n++) {
        int p = node_port(n), is_master = 0;
        for (int i = 0; i < k; i++) {
            is_master |= m[i] == p;
        }
        replica = is_master ? 0 : p;
    }
    assert_true(replica > 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", replica);
    dlock_client *c = dlt_open(url, NULL);
    dlock_lock *l = dlt_lock_new(c, id_on(0, "replica-url"), NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* A lock held while its slot migrates to another master: the client's map is stale, the old
 * master answers MOVED, and extend, status and release follow it. */
static void moved_while_held(dlock_client *c) {
    const char *id = id_on(0, "moved");
    unsigned slot = slot_of(id);
    int from = master_of_slot(slot), to = other_master(from);
    /* With wait_replicas, each lock write goes out as [script, WAIT]: after the migration the
     * old master answers MOVED to the script and runs the keyless WAIT, and the pair must still
     * be redirected together. */
    dlock_lock_options o = {.fencing = 1, .wait_replicas = 1};
    dlock_lock *l = dlt_lock_new(c, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    int64_t fence = dlock_lock_fencing_token(l);

    migration_begin(slot, from, to);
    migration_finish(slot, from, to);

    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_OK);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    redisContext *raw = dlt_raw_connect(to, NULL);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    redisFree(raw);
    /* The fencing counter moved with the slot: the next token is larger. */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_true(dlock_lock_fencing_token(l) > fence);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);

    migration_begin(slot, to, from); /* put it back */
    migration_finish(slot, to, from);
}

static void test_moved_while_held(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    moved_while_held(c);
    dlock_client_close(c);
}

/* In the middle of a migration, with the lock's key already moved: the old master answers ASK,
 * and the client asks the importing node (after ASKING) without changing its map. A new id in
 * the same slot can be taken there too. (Release runs a script over the id's 4 keys, which Redis
 * refuses with TRYAGAIN while only some of them exist on either node: see test_tryagain.) */
static void test_ask_during_migration(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    const char *id = id_on(0, "ask");
    unsigned slot = slot_of(id);
    int from = master_of_slot(slot), to = other_master(from);
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);

    migration_begin(slot, from, to);
    move_key(from, to, id);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_extend(l, 5000), DLOCK_OK);
    assert_true(pttl_asking(to, id) > 10000);
    /* The map did not change: the slot is still the old master's until the migration ends. */
    assert_int_equal(master_of_slot(slot), from);

    char id2[200];
    snprintf(id2, sizeof id2, "{%s}:second", id);
    dlock_lock *l2 = dlt_lock_new(c, id2, NULL);
    dlt_assert_rc(dlock_lock_acquire(l2, NULL), DLOCK_OK);
    assert_true(pttl_asking(to, id2) > 0);

    migration_finish(slot, from, to);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l2), DLOCK_OK);
    dlock_lock_free(l2);
    dlock_lock_free(l);
    migration_begin(slot, to, from);
    migration_finish(slot, to, from);
    dlock_client_close(c);
}

typedef struct finisher {
    unsigned slot;
    int from, to, to_tls;
    const char *key;
} finisher;

static void *finish_later(void *arg) {
    finisher *f = arg;
    dlt_sleep_ms(300);
    /* Not through the cmocka helpers: this is not the test's thread. */
    redisContext *src = redisConnect("127.0.0.1", f->from);
    redisReply *r = redisCommand(src, "MIGRATE 127.0.0.1 %d %s 0 5000", f->to_tls, f->key);
    freeReplyObject(r);
    redisContext *dst = redisConnect("127.0.0.1", f->to);
    redisReply *id = redisCommand(dst, "CLUSTER MYID");
    for (int n = 1; n <= NODES; n++) {
        char key[64];
        snprintf(key, sizeof key, "DLOCK_TEST_CLUSTER_PORT_%d", n);
        const char *p = dlt_env(key);
        redisContext *x = redisConnect("127.0.0.1", atoi(p));
        freeReplyObject(redisCommand(x, "CLUSTER SETSLOT %u NODE %s", f->slot, id->str));
        redisFree(x);
    }
    freeReplyObject(id);
    redisFree(dst);
    redisFree(src);
    return NULL;
}

/* A two-key command while its slot is half migrated gets TRYAGAIN; the client pauses and resends
 * until the migration ends (MOVED) and then gets its answer, all within the command deadline. */
static void test_tryagain(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    const char *base = id_on(0, "tryagain");
    char k1[200], k2[200];
    snprintf(k1, sizeof k1, "{%s}:a", base);
    snprintf(k2, sizeof k2, "{%s}:b", base);
    unsigned slot = slot_of(base);
    int from = master_of_slot(slot), to = other_master(from);
    freeReplyObject(on_port(from, "SET %s 1", k1));
    freeReplyObject(on_port(from, "SET %s 2", k2));
    migration_begin(slot, from, to);
    move_key(from, to, k2);

    finisher f = {slot, from, to, tls_port(to), k1};
    pthread_t t;
    pthread_create(&t, NULL, finish_later, &f);
    const char *argv[] = {"MGET", k1, k2};
    size_t lens[] = {4, strlen(k1), strlen(k2)};
    dlock__reply r;
    int64_t start = dlt_now_ms();
    int rc = dlock__client_call(c, 3, argv, lens, &r, NULL);
    int64_t took = dlt_now_ms() - start;
    pthread_join(t, NULL);
    dlt_assert_rc(rc, DLOCK_OK);
    if (r.type != DLOCK__REPLY_ARRAY) {
        fail_msg("MGET: reply type %d: %s", (int)r.type, r.str != NULL ? r.str : "");
    }
    assert_int_equal(r.elements, 2);
    assert_string_equal(r.element[0].str, "1");
    assert_string_equal(r.element[1].str, "2");
    assert_true(took >= 250);
    dlock__reply_clear(&r);
    wait_converged((int)slot, to);
    migration_begin(slot, to, from);
    migration_finish(slot, to, from);
    dlock_client_close(c);
}

/* Reads one message within ms; returns its payload (malloc'd) or NULL. */
static char *read_payload(dlock_client *c, dlock__conn *sub, int64_t ms, int *rc) {
    dlock__reply m;
    const dlock__reply *p;
    *rc = dlock__sub_read(c, sub, &m, &p, dlt_now_ms() + ms);
    if (*rc != DLOCK_OK) {
        return NULL;
    }
    char *s = p != NULL ? strdup(p->str) : NULL;
    dlock__reply_clear(&m);
    return s;
}

/* Sharded pub/sub: SSUBSCRIBE at the channel's master, and scripts publish with SPUBLISH. When
 * the slot moves, the server drops the subscription; reading says so, and a new subscription
 * goes to the new master. */
static void test_subscribe_follows_slot(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    const char *id = id_on(0, "sub");
    char ch[200];
    snprintf(ch, sizeof ch, "{%s}:grant", id);
    unsigned slot = slot_of(ch);
    int from = master_of_slot(slot), to = other_master(from);
    dlock__conn *sub;
    int sharded = 0; /* a cluster subscribes sharded whatever is asked */
    dlt_assert_rc(dlock__sub_open(c, ch, strlen(ch), &sub, &sharded), DLOCK_OK);
    assert_int_equal(sharded, 1);
    redisReply *n = on_port(from, "SPUBLISH %s hello", ch);
    assert_int_equal(n->integer, 1);
    freeReplyObject(n);
    int rc;
    char *got = read_payload(c, sub, 2000, &rc);
    dlt_assert_rc(rc, DLOCK_OK);
    assert_non_null(got);
    assert_string_equal(got, "hello");
    free(got);

    migration_begin(slot, from, to);
    migration_finish(slot, from, to);
    got = read_payload(c, sub, dlt_slow(5000), &rc);
    dlt_assert_rc(rc, DLOCK_EIO);
    assert_true(dlt_contains(dlock_errmsg(), "slot moved"));
    dlock__sub_close(c, sub);
    dlt_assert_rc(dlock__sub_open(c, ch, strlen(ch), &sub, &sharded), DLOCK_OK);
    n = on_port(to, "SPUBLISH %s again", ch);
    assert_int_equal(n->integer, 1);
    freeReplyObject(n);
    got = read_payload(c, sub, 2000, &rc);
    dlt_assert_rc(rc, DLOCK_OK);
    assert_non_null(got);
    assert_string_equal(got, "again");
    free(got);
    dlock__sub_close(c, sub);

    migration_begin(slot, to, from);
    migration_finish(slot, to, from);
    dlock_client_close(c);
}

typedef struct waiter {
    dlock_client *c;
    const char *id;
    int rc;
    int64_t done_at;
} waiter;

static void *wait_for_lock(void *arg) {
    waiter *w = arg;
    dlock_lock *l = NULL;
    w->rc = dlock_lock_new(&l, w->c, w->id, NULL);
    if (w->rc == DLOCK_OK) {
        dlock_acquire_options a = {.wait_ms = 10000};
        w->rc = dlock_lock_acquire(l, &a);
        w->done_at = dlt_now_ms();
        if (w->rc == DLOCK_OK) {
            w->rc = dlock_lock_release(l);
        }
    }
    dlock_lock_free(l);
    return NULL;
}

/* The wait queue on a cluster: the waiter subscribes with SSUBSCRIBE at the id's master (its
 * grant channel is in the id's slot), and a release hands over with SPUBLISH, waking it at once
 * rather than at its next poll. */
static void wait_handoff(dlock_client *c) {
    const char *id = id_on(0, "handoff");
    int owner = master_of_slot(slot_of(id));
    dlock_lock *holder = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w = {c, id, 1, 0};
    pthread_t t;
    pthread_create(&t, NULL, wait_for_lock, &w);
    int64_t until = dlt_now_ms() + dlt_slow(5000);
    size_t subscribed = 0;
    while (subscribed == 0 && dlt_now_ms() < until) {
        dlt_sleep_ms(20);
        redisReply *r = on_port(owner, "PUBSUB SHARDCHANNELS {%s}:grant:*", id);
        subscribed = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        freeReplyObject(r);
    }
    assert_int_equal(subscribed, 1);
    dlt_sleep_ms(100); /* let it queue */
    int64_t released = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    pthread_join(t, NULL);
    dlt_assert_rc(w.rc, DLOCK_OK);
    print_message("hand-off took %lld ms\n", (long long)(w.done_at - released));
    assert_true(w.done_at - released < dlt_slow(200)); /* polls come every 250-500 ms */
    dlock_lock_free(holder);
}

static void test_wait_handoff(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    wait_handoff(c);
    dlock_client_close(c);
}

/* The same cluster over rediss://: the map, MOVED and the sharded hand-off all name TLS ports
 * (the cluster reports those to TLS clients), every node's certificate is verified against the
 * CA given, and one that does not verify is DLOCK_ETLS naming the node. */
static void test_tls(void **state) {
    (void)state;
    const char *url = dlt_env_require("DLOCK_TEST_CLUSTER_TLS_URL");
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_CLUSTER_CA")};
    dlock_client *c = dlt_open(url, &o);
    lock_on_every_master(c);
    moved_while_held(c);
    wait_handoff(c);
    dlock_client_close(c);

    o.tls_ca_file = dlt_env_require("DLOCK_TEST_CLUSTER_OTHER_CA");
    dlock_client *bad = NULL;
    dlt_assert_rc(dlt_client_open(&bad, url, &o), DLOCK_ETLS);
    assert_null(bad);
    assert_true(dlt_contains(dlock_errmsg(), url + strlen("rediss://")));
}

/* The plain port of the node whose TLS port is tls (ROLE names replicas by the port they announce,
 * the TLS one with tls-replication on), or 0. */
static int plain_port(int tls) {
    for (int n = 1; n <= NODES; n++) {
        if (node_up(node_port(n)) && tls_port(node_port(n)) == tls) {
            return node_port(n);
        }
    }
    return 0;
}

/* The plain port of a replica of master `port` (from its ROLE), or 0. */
static int replica_of(int port) {
    redisReply *r = on_port(port, "ROLE");
    int rp = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
        r->element[2]->type == REDIS_REPLY_ARRAY && r->element[2]->elements > 0) {
        const redisReply *e = r->element[2]->element[0];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 2 && e->element[1]->str != NULL) {
            rp = atoi(e->element[1]->str);
        }
    }
    freeReplyObject(r);
    return rp > 0 ? plain_port(rp) : 0;
}

/* A release hands the lock only to a waiter subscribed at the id's master itself, and sends no
 * grant to one subscribed anywhere else. Replication carries SPUBLISH on to the master's replica
 * and the Cluster bus carries PUBLISH to every node, while the releaser's count is only of the
 * master's own subscribers: a waiter that had subscribed on a replica (after a failover, on a
 * stale map; Redis 7.0 takes SSUBSCRIBE there) got the grant message, took it for its grant, and
 * the releaser, counting no subscriber, passed the lock on to another: two holders. `make fault`
 * (cluster-failover) found it. Here a waiter's entry, as queue_try.lua writes it, names a channel
 * with a raw subscriber on the replica (SSUBSCRIBE), then on the other master (SUBSCRIBE). */
static void test_no_grant_to_a_subscriber_elsewhere(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    const char *id = id_on(0, "elsewhere");
    int owner = master_of_slot(slot_of(id)), replica = replica_of(owner);
    assert_true(replica > 0);
    int where[2] = {replica, other_master(owner)};
    const char *how[2] = {"SSUBSCRIBE", "SUBSCRIBE"}, *pub[2] = {"s", "p"};
    const char *chan[2] = {"00000000feedf00d", "00000000deadbeef"};
    for (int k = 0; k < 2; k++) {
        char channel[256];
        snprintf(channel, sizeof channel, "{%s}:grant:%s", id, chan[k]);
        redisContext *sub = dlt_raw_connect(where[k], NULL);
        redisReply *r = redisCommand(sub, "%s %s", how[k], channel);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY); /* taken, on a replica too */
        freeReplyObject(r);

        dlock_lock *holder = dlt_lock_new(c, id, NULL);
        dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
        r = on_port(owner, "TIME");
        long long now = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
        freeReplyObject(r);
        freeReplyObject(on_port(owner, "RPUSH {%s}:queue elsewhere", id));
        freeReplyObject(on_port(owner, "HSET {%s}:waiters elsewhere %lld|2000|0|1|%s|%s", id,
                                now + 10000, chan[k], pub[k]));
        dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
        dlock_lock_free(holder);

        redisContext *raw = dlt_raw_connect(owner, NULL);
        assert_false(dlt_raw_exists(raw, id, strlen(id))); /* released, handed to nobody */
        redisFree(raw);
        struct timeval tv = {0, (int)dlt_slow(300) * 1000};
        redisSetTimeout(sub, tv);
        void *got = NULL;
        if (redisGetReply(sub, &got) == REDIS_OK) {
            const redisReply *m = got;
            fail_msg("%s on port %d received a grant the releaser did not make: %s", how[k],
                     where[k],
                     m->type == REDIS_REPLY_ARRAY && m->elements == 3 ? m->element[2]->str : "?");
        }
        freeReplyObject(got);
        redisFree(sub);
    }
    dlock_client_close(c);
}

/* A subscription goes to the master of the channel's slot even when the client's map names the
 * master's replica, as it can just after a failover. Redis 7.0 takes SSUBSCRIBE on a replica
 * (without READONLY), and the replica's subscribers receive what the master publishes, but a
 * release counts only the master's own and so skipped such a waiter at every hand-off until its
 * subscription broke. */
static void test_subscribe_skips_a_replica(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    const char *id = id_on(0, "sub-replica");
    char ch[200], moved[64];
    snprintf(ch, sizeof ch, "{%s}:grant:0123456789abcdef", id);
    unsigned slot = slot_of(ch);
    int owner = master_of_slot(slot), replica = replica_of(owner);
    assert_true(replica > 0);
    /* A stale map: the slot's master is the replica. */
    snprintf(moved, sizeof moved, "MOVED %u 127.0.0.1:%d", slot, replica);
    dlock__reply r = {.type = DLOCK__REPLY_ERROR, .str = moved, .len = strlen(moved)};
    assert_non_null(dlock__cluster_follow(c->cluster, &r, NULL));
    assert_int_equal(dlock__node_port(dlock__cluster_node_for(c->cluster, (int)slot)), replica);
    dlock__conn *sub;
    int sharded = 0;
    dlt_assert_rc(dlock__sub_open(c, ch, strlen(ch), &sub, &sharded), DLOCK_OK);
    redisReply *n = on_port(owner, "SPUBLISH %s hello", ch);
    assert_int_equal(n->integer, 1); /* subscribed on the master itself */
    freeReplyObject(n);
    int rc;
    char *got = read_payload(c, sub, 2000, &rc);
    dlt_assert_rc(rc, DLOCK_OK);
    assert_non_null(got);
    assert_string_equal(got, "hello");
    free(got);
    dlock__sub_close(c, sub);
    dlock_client_close(c);
}

/* A slot that no master serves takes the cluster down: dlock reports Redis's CLUSTERDOWN as a
 * server error, never as "not acquired". */
static void test_clusterdown(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    const char *id = id_on(0, "down");
    unsigned slot = slot_of(id);
    int owner = master_of_slot(slot);
    for (int n = 1; n <= NODES; n++) {
        freeReplyObject(on_port(node_port(n), "CLUSTER DELSLOTS %u", slot));
    }
    int64_t until = dlt_now_ms() + dlt_slow(10000);
    for (;;) {
        redisReply *r = on_port(owner, "GET %s", id);
        int down = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CLUSTERDOWN", 11) == 0;
        freeReplyObject(r);
        if (down) {
            break;
        }
        assert_true(dlt_now_ms() < until);
        dlt_sleep_ms(50);
    }
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_ESERVER);
    assert_true(dlt_contains(dlock_errmsg(), "CLUSTERDOWN"));
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_ESERVER);
    dlock_lock_free(l);

    freeReplyObject(on_port(owner, "CLUSTER ADDSLOTS %u", slot));
    wait_converged((int)slot, owner);
    l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
}

static int node_of_port(int port) {
    for (int n = 1; n <= NODES; n++) {
        if (node_port(n) == port) {
            return n;
        }
    }
    return 0;
}

static pid_t pid_of_port(int port) {
    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_CLUSTER_PID_FILE_%d", node_of_port(port));
    pid_t pid = dlt_read_pid(dlt_env_require(key));
    assert_true(pid > 0);
    return pid;
}

/* A master that is up but does not answer (SIGSTOP: the kernel still accepts connections): the
 * first command to it needs a new connection, whose handshake must end at the command's
 * deadline, not at connect_timeout_ms. The pause stays short of cluster-node-timeout, so no
 * failover starts. */
static void test_paused_master_costs_the_command_deadline(void **state) {
    (void)state;
    dlock_client_options o = {.command_timeout_ms = 300, .connect_timeout_ms = 1500};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_CLUSTER_URL"), &o);
    int victim = other_master(node_port(1));
    dlock_lock *l = dlt_lock_new(c, id_on(victim, "paused"), NULL);
    pid_t pid = pid_of_port(victim);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    int64_t start = dlt_now_ms();
    int rc = dlock_lock_acquire(l, NULL);
    int64_t took = dlt_now_ms() - start;
    assert_int_equal(kill(pid, SIGCONT), 0);
    print_message("acquire on a paused master: %d after %lld ms\n", rc, (long long)took);
    dlt_assert_rc(rc, DLOCK_ETIMEDOUT);
    assert_true(dlt_contains(dlock_errmsg(), "deadline"));
    assert_true(took < dlt_slow(1000));
    /* Once it answers again, so does the lock. */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* kill -9 of a master (not the URL's node): its replica takes over after cluster-node-timeout,
 * and the same client, and a new one on the same URL, work again within seconds. The killed
 * node is started again and rejoins as a replica. */
static void test_failover(void **state) {
    (void)state;
    dlock_client *c = open_cluster();
    int url_port = node_port(1);
    int m[NODES], k = masters(m), victim = 0;
    for (int i = 0; i < k && victim == 0; i++) {
        victim = m[i] != url_port ? m[i] : 0;
    }
    const char *id = id_on(victim, "failover");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    int n = node_of_port(victim);
    pid_t pid = pid_of_port(victim);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int64_t start = dlt_now_ms();
    int rc;
    do {
        rc = dlock_lock_acquire(l, NULL);
        if (rc != DLOCK_OK) {
            assert_true(rc < 0); /* an error while failing over, never NOT_ACQUIRED */
            dlt_sleep_ms(200);
        }
    } while (rc != DLOCK_OK && dlt_now_ms() - start < dlt_slow(20000));
    dlt_assert_rc(rc, DLOCK_OK);
    int64_t took = dlt_now_ms() - start;
    print_message("failover: the lock worked again after %lld ms\n", (long long)took);
    assert_int_not_equal(master_of_slot(slot_of(id)), victim);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);

    dlock_client *c2 = open_cluster();
    dlock_lock *l2 = dlt_lock_new(c2, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l2, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l2), DLOCK_OK);
    dlock_lock_free(l2);
    dlock_client_close(c2);
    dlock_client_close(c);

    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_CLUSTER_CONF_%d", n);
    const char *argv[] = {"redis-server", dlt_env_require(key), NULL};
    assert_int_equal(dlt_run(argv, 10000), 0);
    assert_true(dlt_wait_for_redis(victim, NULL, 10000));
    wait_converged(-1, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_ids_on_every_master),
        cmocka_unit_test(test_open_through_replica),
        cmocka_unit_test(test_seed_list),
        cmocka_unit_test(test_moved_while_held),
        cmocka_unit_test(test_ask_during_migration),
        cmocka_unit_test(test_tryagain),
        cmocka_unit_test(test_subscribe_follows_slot),
        cmocka_unit_test(test_wait_handoff),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_no_grant_to_a_subscriber_elsewhere),
        cmocka_unit_test(test_subscribe_skips_a_replica),
        cmocka_unit_test(test_clusterdown),
        cmocka_unit_test(test_paused_master_costs_the_command_deadline),
        cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
