/* fault_proxy: a TCP proxy between dlock clients and Redis that breaks connections on command.
 *
 *   fault_proxy -l LISTEN_PORT -u UPSTREAM_PORT -c CONTROL_PORT
 *
 * Listens on 127.0.0.1:LISTEN_PORT and relays each connection to 127.0.0.1:UPSTREAM_PORT.
 * Faults are armed by sending one line to 127.0.0.1:CONTROL_PORT (one reply line comes back):
 *
 *   lose PATTERN N      the next N requests containing PATTERN are forwarded; the proxy waits for
 *                       Redis's reply, throws it away and closes both sides: the command took
 *                       effect and its reply was lost (e.g. "lose SET 1" for SET NX)
 *   cut PATTERN N       forward the request, then close both sides at once (reply never read)
 *   stall PATTERN MS N  forward the request, hold its reply for MS ms, then pass it on
 *   half PATTERN N      forward the request, pass on the first half of the reply, then close
 *   dropall             close every relayed connection now
 *   clear               disarm every rule
 *   stats               report how many faults fired
 *
 * A request "contains PATTERN" if the bytes the client sent in one read do (RESP is readable:
 * "SET" matches a SET NX, ":fence" a fenced acquire, "EVALSHA" any script). Single-threaded
 * with poll(2); prints its stats on stdout when it gets SIGTERM. */
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
#define BUFSZ     65536

enum { F_LOSE, F_CUT, F_STALL, F_HALF, F_DROPALL, F_KINDS };

typedef struct rule {
    int kind;
    char pattern[64];
    int count;
    int ms;
} rule;

typedef struct pair {
    int cfd, ufd;
    int mode;         /* -1 plain relay, else the F_* fault in progress */
    int64_t until_ms; /* stall: hold replies until then; lose: give up waiting then */
    char *held;       /* stalled reply bytes */
    size_t nheld;
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

static void drop_pair(int i) {
    close(pairs[i].cfd);
    close(pairs[i].ufd);
    free(pairs[i].held);
    pairs[i] = pairs[--npairs];
}

static const rule *match(const char *buf, size_t n) {
    for (int i = 0; i < nrules; i++) {
        rule *r = &rules[i];
        if (r->count > 0 && memmem(buf, n, r->pattern, strlen(r->pattern)) != NULL) {
            r->count--;
            return r;
        }
    }
    return NULL;
}

/* Forgets rules that have fired as often as they were armed, so re-arming never runs out. */
static void compact_rules(void) {
    int k = 0;
    for (int i = 0; i < nrules; i++) {
        if (rules[i].count > 0) {
            rules[k++] = rules[i];
        }
    }
    nrules = k;
}

static void control_line(int fd, char *line) {
    char reply[256], pat[64];
    int n = 0, ms = 0;
    char verb[16];
    if (sscanf(line, "%15s", verb) != 1) {
        return;
    }
    snprintf(reply, sizeof reply, "ok\n");
    compact_rules();
    if (strcmp(verb, "stats") == 0) {
        snprintf(reply, sizeof reply, "lose=%ld cut=%ld stall=%ld half=%ld dropall=%ld conns=%ld\n",
                 fired[F_LOSE], fired[F_CUT], fired[F_STALL], fired[F_HALF], fired[F_DROPALL],
                 relayed);
    } else if (strcmp(verb, "clear") == 0) {
        nrules = 0;
    } else if (strcmp(verb, "dropall") == 0) {
        fired[F_DROPALL] += npairs > 0;
        while (npairs > 0) {
            drop_pair(0);
        }
    } else if (nrules < MAX_RULES && strcmp(verb, "stall") == 0 &&
               sscanf(line, "%*s %63s %d %d", pat, &ms, &n) == 3) {
        rules[nrules++] = (rule){F_STALL, "", n, ms};
        snprintf(rules[nrules - 1].pattern, sizeof rules[0].pattern, "%s", pat);
    } else if (nrules < MAX_RULES && sscanf(line, "%*s %63s %d", pat, &n) == 2 &&
               (strcmp(verb, "lose") == 0 || strcmp(verb, "cut") == 0 ||
                strcmp(verb, "half") == 0)) {
        int kind = verb[0] == 'l' ? F_LOSE : verb[0] == 'c' ? F_CUT : F_HALF;
        rules[nrules++] = (rule){kind, "", n, 0};
        snprintf(rules[nrules - 1].pattern, sizeof rules[0].pattern, "%s", pat);
    } else {
        snprintf(reply, sizeof reply, "error: %.200s\n", line);
    }
    send_all(fd, reply, strlen(reply));
}

int main(int argc, char **argv) {
    int lport = 0, uport = 0, cport = 0, opt;
    while ((opt = getopt(argc, argv, "l:u:c:")) != -1) {
        if (opt == 'l') {
            lport = atoi(optarg);
        } else if (opt == 'u') {
            uport = atoi(optarg);
        } else if (opt == 'c') {
            cport = atoi(optarg);
        } else {
            break;
        }
    }
    if (lport <= 0 || uport <= 0 || cport <= 0) {
        fprintf(stderr, "usage: fault_proxy -l LISTEN_PORT -u UPSTREAM_PORT -c CONTROL_PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = listen_on(lport), ctl = listen_on(cport);
    int ctlconn = -1;
    char ctlbuf[512];
    size_t ctllen = 0;
    static char buf[BUFSZ];
    static struct pollfd pfd[2 * MAX_PAIRS + 3];
    while (!stop) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = lfd, .events = npairs < MAX_PAIRS ? POLLIN : 0};
        pfd[n++] = (struct pollfd){.fd = ctlconn >= 0 ? ctlconn : ctl, .events = POLLIN};
        int64_t now = now_ms(), wake = now + 200;
        for (int i = 0; i < npairs; i++) {
            /* A pair losing a reply reads no more requests; one stalling holds replies. */
            pfd[n++] =
                (struct pollfd){.fd = pairs[i].cfd, .events = pairs[i].mode == F_LOSE ? 0 : POLLIN};
            pfd[n++] = (struct pollfd){.fd = pairs[i].ufd, .events = POLLIN};
            if (pairs[i].mode == F_STALL || pairs[i].mode == F_LOSE) {
                wake = pairs[i].until_ms < wake ? pairs[i].until_ms : wake;
            }
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
                send_all(p->cfd, p->held, p->nheld);
                p->nheld = 0;
                p->mode = -1;
            }
            if (p->mode == F_LOSE && now >= p->until_ms) {
                drop_pair(i);
                continue;
            }
            if (crev & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = recv(p->cfd, buf, sizeof buf, 0);
                if (k <= 0) {
                    drop_pair(i);
                    continue;
                }
                send_all(p->ufd, buf, (size_t)k);
                const rule *r = match(buf, (size_t)k);
                if (r != NULL) {
                    fired[r->kind]++;
                    if (r->kind == F_CUT) {
                        drop_pair(i);
                        continue;
                    }
                    p->mode = r->kind;
                    p->until_ms = now + (r->kind == F_STALL ? r->ms : 2000);
                }
            }
            if (urev & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = recv(p->ufd, buf, sizeof buf, 0);
                if (k <= 0 || p->mode == F_LOSE) {
                    drop_pair(i); /* lose: the reply is read and thrown away */
                    continue;
                }
                if (p->mode == F_HALF) {
                    send_all(p->cfd, buf, (size_t)k / 2);
                    drop_pair(i);
                    continue;
                }
                if (p->mode == F_STALL) {
                    char *g = realloc(p->held, p->nheld + (size_t)k);
                    if (g == NULL) {
                        drop_pair(i);
                        continue;
                    }
                    p->held = g;
                    memcpy(p->held + p->nheld, buf, (size_t)k);
                    p->nheld += (size_t)k;
                } else {
                    send_all(p->cfd, buf, (size_t)k);
                }
            }
        }
        if (pfd[0].revents & POLLIN) {
            int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
            if (cfd >= 0) {
                int ufd = connect_to(uport);
                if (ufd < 0) {
                    close(cfd); /* upstream down: the client sees its connection refused-ish */
                } else {
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    pairs[npairs++] = (pair){cfd, ufd, -1, 0, NULL, 0};
                    relayed++;
                }
            }
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
    printf("fault_proxy: lose=%ld cut=%ld stall=%ld half=%ld dropall=%ld conns=%ld\n",
           fired[F_LOSE], fired[F_CUT], fired[F_STALL], fired[F_HALF], fired[F_DROPALL], relayed);
    return 0;
}
