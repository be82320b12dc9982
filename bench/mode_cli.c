/* Mode cli: peak RSS (wait4) and wall time of `dlock run ID -- true`, and that time as a
 * multiple of two round trips. Skipped when the dlock binary is not built. */
#include "bench.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { RUNS = 21 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The raw PING p50 in us: the round trip the CLI's time is compared with. */
static double rtt_us(const bench *b, redisContext *rc) {
    raw_ctx rx;
    raw_init(&rx, b->lua, rc, "");
    loop_out o;
    memset(&o, 0, sizeof o);
    run_loop(step_raw_ping, &rx, 1, 0.5, &o);
    double us = s_pct(&o.total, 50);
    loop_free(&o);
    return us;
}

void mode_cli(bench *b, const char *url) {
    const char *cli = b->cfg->cli;
    if (cli == NULL || access(cli, X_OK) != 0) {
        add_metric(b->res, "cli: dlock run ID -- true", 0, "skipped", "CLI binary not built (%s)",
                   cli != NULL ? cli : "no --cli");
        return;
    }
    redisContext *rc = raw_connect(url);
    if (rc == NULL) {
        return;
    }
    double rtt = rtt_us(b, rc);
    redisFree(rc);

    double wall[RUNS];
    long max_rss = 0;
    for (int i = 0; i < RUNS; i++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) {
                dup2(devnull, 1);
            }
            execl(cli, cli, "run", "--url", url, KEY_PREFIX "cli", "--", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &st, 0, &ru) < 0) {
            die("cannot run %s", cli);
        }
        wall[i] = (double)(now_ns() - t0) / 1e3;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            add_metric(b->res, "cli: dlock run ID -- true", 0, "failed", "%s exited with status %d",
                       cli, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            return;
        }
        max_rss = ru.ru_maxrss > max_rss ? ru.ru_maxrss : max_rss;
    }
    qsort(wall, RUNS, sizeof wall[0], cmp_double);
    add_metric(b->res, "rtt: raw hiredis PING p50", rtt, "us", "%s", transport_of(url));
    add_metric(b->res, "cli: dlock run peak RSS", (double)max_rss, "KiB", "max of %d runs (wait4)",
               RUNS);
    add_metric(b->res, "cli: dlock run wall p50", wall[RUNS / 2] / 1000.0, "ms",
               "%d runs, fork to exit", RUNS);
    add_metric(b->res, "cli: dlock run wall / (2 x RTT)", wall[RUNS / 2] / (2 * rtt), "x",
               "process start + connect + SET + EVALSHA + exit, over two PINGs");
}
