/* Modes rtt and cycle: one client, acquire + release on one id, next to raw SET NX PX + the
 * release script, and the round trip (PING) everything is made of. */
#include "bench.h"

#include <stdio.h>
#include <string.h>

static const char *const cycle_phases[] = {"acquire (SET NX PX)", "release (EVALSHA)"};

/* Did the library run the very release script the raw limit sends? */
static int same_release_script(redisContext *rc, raw_ctx *rx, lib_ctx *lx) {
    const char *flush[] = {"SCRIPT", "FLUSH"}, *ex[] = {"SCRIPT", "EXISTS", rx->sha_release};
    raw_do(rc, 2, flush);
    step_lib_cycle(lx, 0);
    step_lib_cycle(lx, 1);
    redisReply *e = raw_cmd(rc, 3, ex);
    int same = e->type == REDIS_REPLY_ARRAY && e->elements == 1 && e->element[0]->integer == 1;
    freeReplyObject(e);
    return same;
}

void mode_cycle(bench *b, const char *url) {
    const double secs = b->cfg->secs;
    const char *tr = transport_of(url);
    size_t from = results_count(b->res);
    char key[96], tag[64], title[96];
    snprintf(key, sizeof key, KEY_PREFIX "cycle:%s", tr);
    loop_out ro, lo;
    raw_ctx rx;
    redisContext *rc = raw_connect(url);
    if (rc != NULL) {
        raw_init(&rx, b->lua, rc, key);
        memset(&ro, 0, sizeof ro);
        run_loop(step_raw_ping, &rx, 1, secs / 2, &ro);
        report_loop(b->res, tr, "rtt", "PING", "raw", &ro, 0, NULL);
        loop_free(&ro);
    }
    lib_ctx lx = {0};
    lx.c = lib_open(b->cfg, url, 0);
    lib_check(dlock_lock_new(&lx.l, lx.c, key, NULL), "lock_new");
    lx.ao.attempts = 1;
    run_pair(rc != NULL ? step_raw_cycle : NULL, &rx, &ro, step_lib_cycle, &lx, &lo, 2, 2 * secs);
    if (rc != NULL) {
        report_loop(b->res, tr, "cycle", "acquire+release", "raw", &ro, 2, cycle_phases);
        snprintf(tag, sizeof tag, "cycle_%s_raw", tr);
        snprintf(title, sizeof title, "%s raw hiredis SET NX PX + EVALSHA", tr);
        save_series(b->res, &ro.total, tag, title, 0);
        loop_free(&ro);
    }
    result *r = report_loop(b->res, tr, "cycle", "acquire+release", "dlock", &lo, 2, cycle_phases);
    if (rc != NULL) {
        snprintf(r->note, sizeof r->note, "%s",
                 same_release_script(rc, &rx, &lx)
                     ? "raw sends the library's release script"
                     : "WARNING: the library ran another release script than the raw limit");
        redisFree(rc);
    }
    snprintf(tag, sizeof tag, "cycle_%s_dlock", tr);
    snprintf(title, sizeof title, "%s dlock acquire + release", tr);
    save_series(b->res, &lo.total, tag, title, 0);
    loop_free(&lo);
    dlock_lock_free(lx.l);
    dlock_client_close(lx.c);

    pair_ratios(b->res, from);
    if (r->ratio >= 0) {
        char name[96];
        snprintf(name, sizeof name, "%s: one connection, dlock / raw hiredis cycles/s", tr);
        add_check(b->res, name, r->ratio, 0.95, 1, "x");
    }
}
