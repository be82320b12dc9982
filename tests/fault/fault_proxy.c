/* fault_proxy: a TCP proxy between dlock clients and Redis that breaks connections on command.
 *
 *   fault_proxy -l LISTEN_PORT -u UPSTREAM_PORT -c CONTROL_PORT [-r RULE]...
 *
 * Listens on 127.0.0.1:LISTEN_PORT and relays each connection to 127.0.0.1:UPSTREAM_PORT.
 * Faults are armed by -r RULE at start (repeatable, in force before the first connection) or by
 * sending one RULE line to 127.0.0.1:CONTROL_PORT (one reply line comes back, "ok" or "error").
 *
 * Request rules. They fire on requests: bytes a client sent in one read (RESP is readable: "SET"
 * matches a SET NX, ":fence" a fenced acquire, "EVALSHA" any script). N is how many times the
 * rule fires before it is used up.
 *
 *   lose PATTERN N      forward the request; wait for Redis's reply, throw it away and close both
 *                       sides: the command took effect and its reply was lost
 *   cut PATTERN N       forward the request, then close both sides at once (reply never read)
 *   stall PATTERN MS N  forward the request, hold its reply for MS ms, then pass it on
 *   half PATTERN N      forward the request, pass on the first half of the reply, then close
 *   drop PATTERN N      forward the request and throw away its reply (one complete RESP reply),
 *                       but keep the connection open: the client sees no answer at all and must
 *                       not take the next reply on that connection for this one. A NOSCRIPT
 *                       error is passed on and not counted (the script did not run; the EVAL
 *                       that follows loads it)
 *
 * Connection rules. They pick a connection by what it carries: the first request matching
 * FIRST picks it (dlock opens every connection with a PING, so the command that tells what a
 * connection is for comes next: "SUBSCRIBE" picks the one a waiter listens for hand-offs on).
 * Connections already open are picked by what they carried in their first 1 KB of requests.
 * N is how many connections the rule may pick (0: all).
 *
 *   delay DIR MS FIRST N  delay one direction of the connection by MS ms from the end of the
 *                         picking request's reply on: every later chunk is passed on MS ms
 *                         after it arrived, in order. DIR is s2c (server to client: SUBSCRIBE is
 *                         answered in time, the pub/sub messages after it arrive late) or c2s
 *   cutevery MS FIRST     every MS ms, close every connection that carried a request matching
 *
 * Other lines:
 *   dropall             close every relayed connection now
 *   clear               disarm every rule (connections already delayed stay delayed)
 *   stats               report how many faults fired
 *
 * PATTERN and FIRST: one or more byte strings joined by '&', all of which must occur (in any
 * order). Escapes: \r \n \t \s (space) \& \\ and \xHH; "*" alone matches everything. E.g.
 * "*6\r\n$7\r\nEVALSHA&\r\n$3\r\n400\r\n" is a 6-element EVALSHA whose arguments include "400".
 *
 * Single-threaded with poll(2), so one rule fires on one request at a time, in arrival order;
 * prints its stats on stdout when it gets SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 1024
#define MAX_RULES 32
#define MAX_PAT   192
#define FIRST_LEN 1024
#define BUFSZ     65536

enum { F_LOSE, F_CUT, F_STALL, F_HALF, F_DROP, F_DELAY, F_CUTEVERY, F_DROPALL, F_KINDS };
static const char *const kind_names[F_KINDS] = {"lose", "cut",     "stall",    "half",
                                                "drop", "delayed", "cutevery", "dropall"};

typedef struct rule {
    int kind;
    unsigned char pat[MAX_PAT]; /* parts separated by NUL; npat bytes in all */
    size_t npat;
    int count; /* request rules: fires left; connection rules: picks left, -1 unlimited */
    int ms;
    int dir;         /* delay: 0 c2s, 1 s2c */
    int64_t next_ms; /* cutevery: when it fires next */
} rule;

/* Bytes waiting for their time in a delayed direction. */
typedef struct chunk {
    struct chunk *next;
    int64_t due_ms;
    size_t n;
    char data[];
} chunk;

typedef struct pair {
    int cfd, ufd;
    int mode;         /* -1 plain relay, else the F_LOSE/F_STALL/F_HALF fault in progress */
    int64_t until_ms; /* stall: hold replies until then; lose: give up waiting then */
    char *held;       /* stalled reply bytes */
    size_t nheld;
    char first[FIRST_LEN]; /* the first requests the client sent, for connection rules */
    size_t nfirst;
    int delay_ms[2];      /* per direction (0 c2s, 1 s2c); 0 = none */
    int arm_s2c;          /* s2c delay to start once the next complete reply has passed */
    chunk *q[2], **qt[2]; /* delayed bytes per direction, oldest first */
    int drops;            /* replies still to throw away (drop) */
    char *rbuf;           /* upstream bytes being parsed while dropping */
    size_t nrbuf;
} pair;

static pair pairs[MAX_PAIRS];
static int npairs;
static rule rules[MAX_RULES];
static int nrules;
static long fired[F_KINDS], relayed;
static volatile sig_atomic_t stop;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
        fprintf(stderr, "fault_proxy: cannot listen on %d: %s\n", port, strerror(errno));
        exit(1);
    }
    return fd;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) {
                continue;
            }
            return; /* the peer is gone; the next read notices */
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Sends toward the client (dir 1) or the server (dir 0), through the delay queue if that
 * direction is delayed. Bytes already queued keep their turn, so order is never changed. */
static void pass_on(pair *p, int dir, const char *buf, size_t n) {
    if (n == 0) {
        return;
    }
    if (p->delay_ms[dir] == 0 && p->q[dir] == NULL) {
        send_all(dir ? p->cfd : p->ufd, buf, n);
        return;
    }
    chunk *c = malloc(sizeof *c + n);
    if (c == NULL) {
        return; /* lost bytes: the client times out, as after a cut */
    }
    c->next = NULL;
    c->due_ms = now_ms() + p->delay_ms[dir];
    c->n = n;
    memcpy(c->data, buf, n);
    if (p->q[dir] == NULL) {
        p->qt[dir] = &p->q[dir];
    }
    *p->qt[dir] = c;
    p->qt[dir] = &c->next;
}

/* Sends every queued chunk that is due; returns the earliest time one is still waiting, or
 * `wake` if that is sooner. */
static int64_t flush_due(pair *p, int64_t now, int64_t wake) {
    for (int dir = 0; dir < 2; dir++) {
        while (p->q[dir] != NULL && p->q[dir]->due_ms <= now) {
            chunk *c = p->q[dir];
            send_all(dir ? p->cfd : p->ufd, c->data, c->n);
            p->q[dir] = c->next;
            free(c);
        }
        if (p->q[dir] != NULL && p->q[dir]->due_ms < wake) {
            wake = p->q[dir]->due_ms;
        }
    }
    return wake;
}

static void drop_pair(int i) {
    pair *p = &pairs[i];
    close(p->cfd);
    close(p->ufd);
    free(p->held);
    free(p->rbuf);
    for (int dir = 0; dir < 2; dir++) {
        while (p->q[dir] != NULL) {
            chunk *c = p->q[dir];
            p->q[dir] = c->next;
            free(c);
        }
    }
    pairs[i] = pairs[--npairs];
    /* The moved pair's queue tail may point into its old slot. */
    for (int dir = 0; i < npairs && dir < 2; dir++) {
        if (pairs[i].q[dir] == NULL) {
            continue;
        }
        chunk *c = pairs[i].q[dir];
        while (c->next != NULL) {
            c = c->next;
        }
        pairs[i].qt[dir] = &c->next;
    }
}

/* ---- patterns ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes a PATTERN word into NUL-separated parts. Returns 0, or -1 if malformed. */
static int compile_pattern(const char *s, rule *r) {
    size_t n = 0;
    if (strcmp(s, "*") == 0) {
        r->npat = 0; /* matches everything */
        return 0;
    }
    for (; *s != '\0'; s++) {
        int c = (unsigned char)*s;
        if (c == '&') {
            c = 0;
        } else if (c == '\\') {
            s++;
            int h1, h2;
            switch (*s) {
            case 'r':
                c = '\r';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 's':
                c = ' ';
                break;
            case '&':
            case '\\':
                c = *s;
                break;
            case 'x':
                if ((h1 = hexval(s[1])) < 0 || (h2 = hexval(s[2])) < 0 || h1 * 16 + h2 == 0) {
                    return -1;
                }
                c = h1 * 16 + h2;
                s += 2;
                break;
            default:
                return -1;
            }
        }
        if (n + 2 > sizeof r->pat) {
            return -1;
        }
        r->pat[n++] = (unsigned char)c;
    }
    if (n == 0) {
        return -1;
    }
    r->npat = n;
    return 0;
}

static int pattern_matches(const rule *r, const char *buf, size_t n) {
    size_t at = 0;
    while (at < r->npat) {
        const unsigned char *part = r->pat + at;
        size_t len = strnlen((const char *)part, r->npat - at);
        if (memmem(buf, n, part, len) == NULL) {
            return 0;
        }
        at += len + 1;
    }
    return 1;
}

/* The request rule that fires on this request, if any (its count is used up by one). */
static const rule *match_request(const char *buf, size_t n) {
    for (int i = 0; i < nrules; i++) {
        rule *r = &rules[i];
        if (r->kind <= F_DROP && r->count > 0 && pattern_matches(r, buf, n)) {
            r->count--;
            return r;
        }
    }
    return NULL;
}

/* Applies the delay rules to a connection, on what it carried so far. `now`: the request that
 * picks it has just been passed on (its reply is still to come); else the connection is idle and
 * the delay starts at once. */
static void pick_connection(pair *p, int now) {
    for (int i = 0; i < nrules; i++) {
        rule *r = &rules[i];
        if (r->kind == F_DELAY && r->count != 0 && p->delay_ms[r->dir] == 0 &&
            !(r->dir == 1 && p->arm_s2c) && pattern_matches(r, p->first, p->nfirst)) {
            if (r->dir == 1 && now) {
                p->arm_s2c = r->ms;
            } else {
                p->delay_ms[r->dir] = r->ms;
            }
            r->count -= r->count > 0;
            fired[F_DELAY]++;
        }
    }
}

/* Forgets request rules that have fired as often as they were armed. */
static void compact_rules(void) {
    int k = 0;
    for (int i = 0; i < nrules; i++) {
        if (rules[i].count != 0 || rules[i].kind == F_CUTEVERY) {
            rules[k++] = rules[i];
        }
    }
    nrules = k;
}

/* RESP: the length of the one complete reply at the start of buf, or 0 if it is not complete
 * yet. Malformed input counts as one reply to its end (the client will make sense of it). */
static size_t resp_len(const char *buf, size_t n, int depth) {
    const char *eol = memchr(buf, '\n', n);
    if (n == 0 || eol == NULL) {
        return 0;
    }
    size_t head = (size_t)(eol - buf) + 1;
    long long len = strtoll(buf + 1, NULL, 10);
    switch (buf[0]) {
    case '$':
        if (len < 0) {
            return head;
        }
        return head + (size_t)len + 2 <= n ? head + (size_t)len + 2 : 0;
    case '*': {
        size_t at = head;
        for (long long i = 0; i < len && depth < 8; i++) {
            size_t k = resp_len(buf + at, n - at, depth + 1);
            if (k == 0) {
                return 0;
            }
            at += k;
        }
        return at;
    }
    default: /* + - : and anything else: one line */
        return head;
    }
}

/* Upstream bytes for a pair that drops replies or is to start a delay after the next reply:
 * throws away whole replies while any are due, passes on the one that arms the delay, then the
 * rest (delayed once armed). */
static int feed_drops(pair *p, const char *buf, size_t k) {
    char *g = realloc(p->rbuf, p->nrbuf + k);
    if (g == NULL) {
        return -1;
    }
    p->rbuf = g;
    memcpy(p->rbuf + p->nrbuf, buf, k);
    p->nrbuf += k;
    size_t at = 0, len;
    while (p->drops > 0 && (len = resp_len(p->rbuf + at, p->nrbuf - at, 0)) > 0) {
        /* A NOSCRIPT error means the script did not run: pass it on, so the client's EVAL
         * fallback loads the script and the next EVALSHA is one that takes effect. */
        if (len > 9 && memcmp(p->rbuf + at, "-NOSCRIPT", 9) == 0) {
            pass_on(p, 1, p->rbuf + at, len);
            fired[F_DROP]--;
        }
        at += len;
        p->drops--;
    }
    if (p->drops == 0 && p->arm_s2c > 0 && (len = resp_len(p->rbuf + at, p->nrbuf - at, 0)) > 0) {
        pass_on(p, 1, p->rbuf + at, len);
        at += len;
        p->delay_ms[1] = p->arm_s2c;
        p->arm_s2c = 0;
    }
    if (p->drops == 0 && p->arm_s2c == 0) {
        pass_on(p, 1, p->rbuf + at, p->nrbuf - at);
        at = p->nrbuf;
    }
    memmove(p->rbuf, p->rbuf + at, p->nrbuf - at);
    p->nrbuf -= at;
    return 0;
}

/* ---- control ---- */

/* Parses one RULE line; 0 on success. */
static int add_rule(const char *line) {
    char verb[16], a[MAX_PAT * 4], b[MAX_PAT * 4];
    int n = 0, ms = 0;
    rule r = {0};
    if (nrules >= MAX_RULES || sscanf(line, "%15s", verb) != 1) {
        return -1;
    }
    if (strcmp(verb, "stall") == 0) {
        if (sscanf(line, "%*s %767s %d %d", a, &ms, &n) != 3 || compile_pattern(a, &r) != 0) {
            return -1;
        }
        r.kind = F_STALL;
    } else if (strcmp(verb, "lose") == 0 || strcmp(verb, "cut") == 0 || strcmp(verb, "half") == 0 ||
               strcmp(verb, "drop") == 0) {
        if (sscanf(line, "%*s %767s %d", a, &n) != 2 || compile_pattern(a, &r) != 0) {
            return -1;
        }
        r.kind = verb[0] == 'l'   ? F_LOSE
                 : verb[0] == 'h' ? F_HALF
                 : verb[1] == 'u' ? F_CUT
                                  : F_DROP;
    } else if (strcmp(verb, "delay") == 0) {
        if (sscanf(line, "%*s %767s %d %767s %d", b, &ms, a, &n) != 4 ||
            compile_pattern(a, &r) != 0 || ms <= 0 || n < 0 ||
            (strcmp(b, "s2c") != 0 && strcmp(b, "c2s") != 0)) {
            return -1;
        }
        r.kind = F_DELAY;
        r.dir = b[0] == 's';
        n = n == 0 ? -1 : n;
    } else if (strcmp(verb, "cutevery") == 0) {
        if (sscanf(line, "%*s %d %767s", &ms, a) != 2 || compile_pattern(a, &r) != 0 || ms <= 0) {
            return -1;
        }
        r.kind = F_CUTEVERY;
        r.next_ms = now_ms() + ms;
        n = -1;
    } else {
        return -1;
    }
    if (n == 0 || n < -1) {
        return -1;
    }
    r.count = n;
    r.ms = ms;
    rules[nrules++] = r;
    if (r.kind == F_DELAY) {
        for (int i = 0; i < npairs; i++) {
            if (pairs[i].nfirst > 0) {
                pick_connection(&pairs[i], 0);
            }
        }
    }
    return 0;
}

static void control_line(int fd, char *line) {
    char reply[512], verb[16];
    if (sscanf(line, "%15s", verb) != 1) {
        return;
    }
    snprintf(reply, sizeof reply, "ok\n");
    compact_rules();
    if (strcmp(verb, "stats") == 0) {
        size_t at = 0;
        for (int k = 0; k < F_KINDS; k++) {
            at +=
                (size_t)snprintf(reply + at, sizeof reply - at, "%s=%ld ", kind_names[k], fired[k]);
        }
        snprintf(reply + at, sizeof reply - at, "conns=%ld\n", relayed);
    } else if (strcmp(verb, "clear") == 0) {
        nrules = 0;
    } else if (strcmp(verb, "dropall") == 0) {
        fired[F_DROPALL] += npairs > 0;
        while (npairs > 0) {
            drop_pair(0);
        }
    } else if (add_rule(line) != 0) {
        snprintf(reply, sizeof reply, "error: %.200s\n", line);
    }
    send_all(fd, reply, strlen(reply));
}

/* Closes the connections that a due cutevery rule picks. */
static int64_t run_schedules(int64_t now, int64_t wake) {
    for (int r = 0; r < nrules; r++) {
        rule *ru = &rules[r];
        if (ru->kind != F_CUTEVERY) {
            continue;
        }
        if (now >= ru->next_ms) {
            for (int i = npairs - 1; i >= 0; i--) {
                if (pairs[i].nfirst > 0 && pattern_matches(ru, pairs[i].first, pairs[i].nfirst)) {
                    drop_pair(i);
                    fired[F_CUTEVERY]++;
                }
            }
            ru->next_ms = now + ru->ms;
        }
        wake = ru->next_ms < wake ? ru->next_ms : wake;
    }
    return wake;
}

/* ---- relay ---- */

/* A request from the client. Returns -1 if the pair was dropped. */
static int from_client(int i, const char *buf, size_t k, int64_t now) {
    pair *p = &pairs[i];
    pass_on(p, 0, buf, k);
    if (p->nfirst < FIRST_LEN) {
        size_t add = k < FIRST_LEN - p->nfirst ? k : FIRST_LEN - p->nfirst;
        memcpy(p->first + p->nfirst, buf, add);
        p->nfirst += add;
        pick_connection(p, 1);
    }
    const rule *r = match_request(buf, k);
    if (r == NULL) {
        return 0;
    }
    fired[r->kind]++;
    if (r->kind == F_CUT) {
        drop_pair(i);
        return -1;
    }
    if (r->kind == F_DROP) {
        p->drops++;
        return 0;
    }
    p->mode = r->kind;
    p->until_ms = now + (r->kind == F_STALL ? r->ms : 2000);
    return 0;
}

/* Bytes from Redis. Returns -1 if the pair was dropped. */
static int from_server(int i, const char *buf, size_t k) {
    pair *p = &pairs[i];
    if (p->mode == F_LOSE) {
        drop_pair(i); /* lose: the reply is read and thrown away */
        return -1;
    }
    if (p->mode == F_HALF) {
        pass_on(p, 1, buf, k / 2);
        flush_due(p, INT64_MAX, 0);
        drop_pair(i);
        return -1;
    }
    if (p->mode == F_STALL) {
        char *g = realloc(p->held, p->nheld + k);
        if (g == NULL) {
            drop_pair(i);
            return -1;
        }
        p->held = g;
        memcpy(p->held + p->nheld, buf, k);
        p->nheld += k;
        return 0;
    }
    if (p->drops > 0 || p->nrbuf > 0 || p->arm_s2c > 0) {
        if (feed_drops(p, buf, k) != 0) {
            drop_pair(i);
            return -1;
        }
        return 0;
    }
    pass_on(p, 1, buf, k);
    return 0;
}

static void accept_one(int lfd, int uport) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
    if (cfd < 0) {
        return;
    }
    int ufd = connect_to(uport);
    if (ufd < 0) {
        close(cfd); /* upstream down: the client sees its connection refused-ish */
        return;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pairs[npairs] = (pair){.cfd = cfd, .ufd = ufd, .mode = -1};
    npairs++;
    relayed++;
}

int main(int argc, char **argv) {
    int lport = 0, uport = 0, cport = 0, opt;
    while ((opt = getopt(argc, argv, "l:u:c:r:")) != -1) {
        if (opt == 'l') {
            lport = atoi(optarg);
        } else if (opt == 'u') {
            uport = atoi(optarg);
        } else if (opt == 'c') {
            cport = atoi(optarg);
        } else if (opt == 'r') {
            if (add_rule(optarg) != 0) {
                fprintf(stderr, "fault_proxy: bad rule: %s\n", optarg);
                return 2;
            }
        } else {
            lport = 0;
            break;
        }
    }
    if (lport <= 0 || uport <= 0 || cport <= 0) {
        fprintf(stderr, "usage: fault_proxy -l LISTEN_PORT -u UPSTREAM_PORT -c CONTROL_PORT "
                        "[-r RULE]...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = listen_on(lport), ctl = listen_on(cport);
    int ctlconn = -1;
    char ctlbuf[2048];
    size_t ctllen = 0;
    static char buf[BUFSZ];
    static struct pollfd pfd[2 * MAX_PAIRS + 3];
    while (!stop) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = lfd, .events = npairs < MAX_PAIRS ? POLLIN : 0};
        pfd[n++] = (struct pollfd){.fd = ctlconn >= 0 ? ctlconn : ctl, .events = POLLIN};
        int64_t now = now_ms(), wake = now + 200;
        wake = run_schedules(now, wake);
        for (int i = 0; i < npairs; i++) {
            /* A pair losing a reply reads no more requests; one stalling holds replies. */
            pfd[n++] =
                (struct pollfd){.fd = pairs[i].cfd, .events = pairs[i].mode == F_LOSE ? 0 : POLLIN};
            pfd[n++] = (struct pollfd){.fd = pairs[i].ufd, .events = POLLIN};
            if (pairs[i].mode == F_STALL || pairs[i].mode == F_LOSE) {
                wake = pairs[i].until_ms < wake ? pairs[i].until_ms : wake;
            }
            wake = flush_due(&pairs[i], now, wake);
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (poll(pfd, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("poll");
            return 1;
        }
        now = now_ms();
        /* Walk the pairs from the end so drop_pair (which moves the last one) is safe. The pollfd
         * slots were laid out before any drop, so index them by the pair's original position. */
        int snapshot = npairs;
        for (int i = snapshot - 1; i >= 0; i--) {
            if (i >= npairs) {
                continue;
            }
            pair *p = &pairs[i];
            short crev = pfd[2 + 2 * i].revents, urev = pfd[3 + 2 * i].revents;
            if (p->mode == F_STALL && now >= p->until_ms) {
                pass_on(p, 1, p->held, p->nheld);
                p->nheld = 0;
                p->mode = -1;
            }
            if (p->mode == F_LOSE && now >= p->until_ms) {
                drop_pair(i);
                continue;
            }
            if (crev & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = recv(p->cfd, buf, sizeof buf, 0);
                if (k <= 0 || from_client(i, buf, (size_t)k, now) != 0) {
                    if (k <= 0) {
                        drop_pair(i);
                    }
                    continue;
                }
            }
            if (urev & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = recv(p->ufd, buf, sizeof buf, 0);
                if (k <= 0) {
                    drop_pair(i);
                    continue;
                }
                if (from_server(i, buf, (size_t)k) != 0) {
                    continue;
                }
            }
        }
        if (pfd[0].revents & POLLIN) {
            accept_one(lfd, uport);
        }
        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (ctlconn < 0) {
                ctlconn = accept4(ctl, NULL, NULL, SOCK_CLOEXEC);
                ctllen = 0;
            } else {
                ssize_t k = recv(ctlconn, ctlbuf + ctllen, sizeof ctlbuf - 1 - ctllen, 0);
                if (k <= 0) {
                    close(ctlconn);
                    ctlconn = -1;
                } else {
                    ctllen += (size_t)k;
                    ctlbuf[ctllen] = '\0';
                    char *nl;
                    while ((nl = strchr(ctlbuf, '\n')) != NULL) {
                        *nl = '\0';
                        control_line(ctlconn, ctlbuf);
                        ctllen -= (size_t)(nl + 1 - ctlbuf);
                        memmove(ctlbuf, nl + 1, ctllen + 1);
                    }
                    if (ctllen == sizeof ctlbuf - 1) {
                        ctllen = 0;
                    }
                }
            }
        }
    }
    printf("fault_proxy:");
    for (int k = 0; k < F_KINDS; k++) {
        printf(" %s=%ld", kind_names[k], fired[k]);
    }
    printf(" conns=%ld\n", relayed);
    return 0;
}
