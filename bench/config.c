/* The command line: every option checked before anything runs. A bad value is named with its
 * option and exits BENCH_EXIT_USAGE (64, sysexits' EX_USAGE), so run.sh and CI tell a typo
 * from a failed measurement (exit 1). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SECONDS 0.01
#define MAX_SECONDS 3600.0
#define MAX_IDS     10000000L /* per --keys entry: the keyspace is filled to this many keys */

static void usage(FILE *f) {
    fprintf(f,
            "usage: dlock_bench [options] --url URL [--url URL ...]\n"
            "  --url URL         redis://host:port, unix:///path.sock, http(s)://gateway (REST);\n"
            "                    up to %d\n"
            "  --rest-token T    token for http(s):// URLs\n"
            "  --seconds S       length of each measurement (default 2, %g to %g)\n"
            "  --workers W       contending workers (default 16, 1 to %d)\n"
            "  --keys LIST       id counts for the many-ids mode (default 1,1000,100000,1000000;\n"
            "                    up to %d counts, each 1 to %ld)\n"
            "  --modes LIST      of %s\n"
            "  --cli PATH        the dlock CLI binary, for the cli mode\n"
            "  --out DIR         where latency .dat files and latency.gp go (default .)\n"
            "  --json FILE       write all results as JSON\n"
            "  --help            this text\n",
            MAX_URLS, MIN_SECONDS, MAX_SECONDS, MAX_WORKERS, MAX_KEYS, MAX_IDS, BENCH_ALL_MODES);
}

static _Noreturn void __attribute__((format(printf, 1, 2))) bad(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dlock_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(dlock_bench --help for usage)\n");
    va_end(ap);
    exit(BENCH_EXIT_USAGE);
}

static double parse_double(const char *opt, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno == ERANGE || !isfinite(d)) {
        bad("%s: '%s' is not a number", opt, v);
    }
    if (d < lo || d > hi) {
        bad("%s: %s is out of range (%g to %g)", opt, v, lo, hi);
    }
    return d;
}

/* The whole of v[0..len) as a decimal integer in lo..hi. */
static long parse_long(const char *opt, const char *v, size_t len, long lo, long hi) {
    char buf[32];
    if (len == 0 || len >= sizeof buf) {
        bad("%s: '%.*s' is not a whole number", opt, (int)len, v);
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long n = strtol(buf, &end, 10);
    if (end == buf || *end != '\0') {
        bad("%s: '%s' is not a whole number", opt, buf);
    }
    if (errno == ERANGE || n < lo || n > hi) {
        bad("%s: %s is out of range (%ld to %ld)", opt, buf, lo, hi);
    }
    return n;
}

/* Calls f on each entry of a comma-separated list; an empty entry is an error. */
static void each_entry(const char *opt, const char *list,
                       void (*f)(bench_config *, const char *, const char *, size_t),
                       bench_config *cfg) {
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0) {
            bad("%s: empty entry in '%s'", opt, list);
        }
        f(cfg, opt, p, len);
        p += len;
        if (*p == '\0') {
            return;
        }
    }
}

static void add_keys(bench_config *cfg, const char *opt, const char *v, size_t len) {
    if (cfg->nkeys == MAX_KEYS) {
        bad("%s: more than %d id counts", opt, MAX_KEYS);
    }
    cfg->keys[cfg->nkeys++] = parse_long(opt, v, len, 1, MAX_IDS);
}

static void check_mode(bench_config *cfg, const char *opt, const char *v, size_t len) {
    (void)cfg;
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)len, v);
    if (len >= sizeof name || !bench_list_has(BENCH_ALL_MODES, name)) {
        bad("%s: unknown mode '%.*s' (modes: %s)", opt, (int)len, v, BENCH_ALL_MODES);
    }
}

static void check_url(const char *v) {
    static const char *const schemes[] = {"redis://", "rediss://", "unix://", "http://",
                                          "https://"};
    size_t i = 0, n = sizeof schemes / sizeof schemes[0];
    while (i < n && strncmp(v, schemes[i], strlen(schemes[i])) != 0) {
        i++;
    }
    if (i == n) {
        bad("--url: '%s' is not a redis://, rediss://, unix://, http:// or https:// URL", v);
    }
    bench_endpoint ep;
    if (url_endpoint(v, &ep) < 0) {
        bad("--url: '%s' has a port that is not 1 to 65535", v);
    }
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
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0 ||
            !bench_list_has("url,rest-token,seconds,workers,keys,modes,cli,out,json", a + 2)) {
            bad("unknown option '%s'", a);
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (v == NULL || v[0] == '\0') {
            bad("%s needs a value", a);
        }
        if (strcmp(a, "--url") == 0) {
            if (cfg->nurls == MAX_URLS) {
                bad("--url: more than %d URLs", MAX_URLS);
            }
            check_url(v);
            cfg->urls[cfg->nurls++] = v;
        } else if (strcmp(a, "--rest-token") == 0) {
            cfg->rest_token = v;
        } else if (strcmp(a, "--seconds") == 0) {
            cfg->secs = parse_double(a, v, MIN_SECONDS, MAX_SECONDS);
        } else if (strcmp(a, "--workers") == 0) {
            cfg->workers = (int)parse_long(a, v, strlen(v), 1, MAX_WORKERS);
        } else if (strcmp(a, "--keys") == 0) {
            keys = v;
        } else if (strcmp(a, "--modes") == 0) {
            each_entry(a, v, check_mode, cfg);
            cfg->modes = v;
        } else if (strcmp(a, "--cli") == 0) {
            cfg->cli = v;
        } else if (strcmp(a, "--out") == 0) {
            cfg->outdir = v;
        } else {
            cfg->json = v;
        }
    }
    if (cfg->nurls == 0) {
        bad("at least one --url is needed");
    }
    cfg->nkeys = 0;
    each_entry("--keys", keys, add_keys, cfg);
}
