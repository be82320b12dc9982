/* The command line. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr,
            "usage: dlock_bench [options] --url URL [--url URL ...]\n"
            "  --url URL         redis://host:port, unix:///path.sock, http(s)://gateway (REST)\n"
            "  --rest-token T    token for http(s):// URLs\n"
            "  --seconds S       length of each measurement (default 2)\n"
            "  --workers W       contending workers (default 16, max %d)\n"
            "  --keys LIST       id counts for the many-ids mode (default 1,1000,100000,1000000)\n"
            "  --modes LIST      of cycle,contend,keys,extend,debounce,memory,cli,server\n"
            "  --cli PATH        the dlock CLI binary, for the cli mode\n"
            "  --out DIR         where latency .dat files and latency.gp go (default .)\n"
            "  --json FILE       write all results as JSON\n",
            MAX_WORKERS);
    exit(2);
}

int bench_list_has(const char *list, const char *m) {
    size_t n = strlen(m);
    for (const char *p = list; (p = strstr(p, m)) != NULL; p += n) {
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

void bench_parse_args(bench_config *cfg, int argc, char **argv) {
    memset(cfg, 0, sizeof *cfg);
    cfg->secs = 2.0;
    cfg->workers = 16;
    cfg->outdir = ".";
    cfg->modes = BENCH_ALL_MODES;
    const char *keys = "1,1000,100000,1000000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (strcmp(a, "--url") == 0 && cfg->nurls < MAX_URLS) {
            cfg->urls[cfg->nurls++] = v;
        } else if (strcmp(a, "--rest-token") == 0) {
            cfg->rest_token = v;
        } else if (strcmp(a, "--seconds") == 0) {
            cfg->secs = atof(v);
        } else if (strcmp(a, "--workers") == 0) {
            cfg->workers = atoi(v);
        } else if (strcmp(a, "--keys") == 0) {
            keys = v;
        } else if (strcmp(a, "--modes") == 0) {
            cfg->modes = v;
        } else if (strcmp(a, "--cli") == 0) {
            cfg->cli = v;
        } else if (strcmp(a, "--out") == 0) {
            cfg->outdir = v;
        } else if (strcmp(a, "--json") == 0) {
            cfg->json = v;
        } else {
            usage();
        }
        i++;
    }
    if (cfg->nurls == 0 || cfg->secs <= 0 || cfg->workers < 1 || cfg->workers > MAX_WORKERS) {
        usage();
    }
    for (const char *p = keys; *p != '\0' && cfg->nkeys < MAX_KEYS;) {
        long n = strtol(p, (char **)&p, 10);
        p += *p == ',';
        if (n >= 1) {
            cfg->keys[cfg->nkeys++] = n;
        }
    }
}
