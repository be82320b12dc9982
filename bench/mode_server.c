/* Mode server: the server's own ceiling, redis-benchmark -t set,get with -c 1, -c 50 and
 * -c 50 -P 16. Skipped for transports redis-benchmark cannot reach (REST, TLS). */
#include "bench.h"

#include <stdio.h>
#include <string.h>

void mode_server(bench *b, const char *url) {
    const char *tr = transport_of(url);
    bench_endpoint ep;
    char where[600];
    if (url_endpoint(url, &ep) != 0) {
        return;
    }
    if (ep.path[0] != '\0') {
        snprintf(where, sizeof where, "-s '%s'", ep.path);
    } else {
        snprintf(where, sizeof where, "-h '%s' -p '%d'", ep.host, ep.port);
    }
    static const struct {
        const char *label, *args;
    } runs[] = {
        {"c=1", "-c 1 -n 30000"},
        {"c=50", "-c 50 -n 100000"},
        {"c=50 P=16", "-c 50 -n 300000 -P 16"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char cmd[900];
        snprintf(cmd, sizeof cmd, "redis-benchmark %s -t set,get %s -q 2>/dev/null", where,
                 runs[i].args);
        FILE *p = popen(cmd, "r");
        if (p == NULL) {
            return;
        }
        char line[512];
        while (fgets(line, sizeof line, p) != NULL) {
            /* "SET: 86956.52 requests per second, p50=0.287 msec" (maybe after \r progress) */
            char *s = strrchr(line, '\r');
            s = s != NULL ? s + 1 : line;
            char name[16];
            double rps, p50 = 0;
            if (sscanf(s, "%15[A-Z]: %lf requests per second, p50=%lf", name, &rps, &p50) >= 2) {
                char op[40];
                snprintf(op, sizeof op, "%s %s", name, runs[i].label);
                result *r = add_result(b->res, tr, "server", op, "redis-bm", NULL, rps);
                r->p50 = p50 * 1000.0;
                r->p99 = r->p999 = -1; /* -q prints the median only */
                snprintf(r->note, sizeof r->note, "redis-benchmark %s", runs[i].args);
            }
        }
        if (pclose(p) != 0 && i == 0) {
            fprintf(stderr, "  redis-benchmark failed or absent: server ceiling skipped\n");
            return;
        }
    }
}
