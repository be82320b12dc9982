/* Host name resolution with a deadline. getaddrinfo has none of its own (only the resolver's
 * timeouts from resolv.conf, possibly many seconds), so a name is resolved on a short-lived
 * thread while the caller waits no longer than its deadline. A resolver that is still busy then
 * finishes on its own and frees its result: nothing waits for it and nothing leaks. Numeric
 * addresses are converted at once, with no thread. */
#include "fmacros.h"

#include "internal.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lookup {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    int done, abandoned;
    int rc;
    struct addrinfo *res;
    char *host;
    char port[16];
} lookup;

static void lookup_free(lookup *q) {
    if (q->res != NULL) {
        freeaddrinfo(q->res);
    }
    pthread_cond_destroy(&q->done_cv);
    pthread_mutex_destroy(&q->mu);
    free(q->host);
    free(q);
}

static void *resolver(void *arg) {
    lookup *q = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(q->host, q->port, &hints, &res);
    pthread_mutex_lock(&q->mu);
    q->rc = rc;
    q->res = res;
    q->done = 1;
    int abandoned = q->abandoned;
    pthread_cond_signal(&q->done_cv);
    pthread_mutex_unlock(&q->mu);
    if (abandoned) {
        lookup_free(q); /* the caller gave up: the result is ours to drop */
    }
    return NULL;
}

int dlock__resolve(const char *host, int port, int64_t deadline_ms, struct addrinfo **out,
                   int *gai_rc) {
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    *gai_rc = getaddrinfo(host, portstr, &hints, out);
    if (*gai_rc != EAI_NONAME) {
        return *gai_rc == 0 ? DLOCK_OK : DLOCK_ECONNECT; /* a numeric address, or a hard error */
    }
    lookup *q = calloc(1, sizeof *q);
    if (q == NULL || (q->host = strdup(host)) == NULL) {
        free(q);
        return DLOCK_ENOMEM;
    }
    memcpy(q->port, portstr, sizeof portstr);
    pthread_mutex_init(&q->mu, NULL);
    dlock__cond_init_monotonic(&q->done_cv);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &attr, resolver, q);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        lookup_free(q);
        return DLOCK_ESYS;
    }
    pthread_mutex_lock(&q->mu);
    while (!q->done && dlock__now_ms() < deadline_ms) {
        dlock__cond_wait_until(&q->done_cv, &q->mu, deadline_ms);
    }
    int done = q->done;
    if (done) {
        *gai_rc = q->rc;
        *out = q->res;
        q->res = NULL;
    } else {
        q->abandoned = 1;
    }
    pthread_mutex_unlock(&q->mu);
    if (!done) {
        return DLOCK_ETIMEDOUT;
    }
    lookup_free(q);
    return *gai_rc == 0 ? DLOCK_OK : DLOCK_ECONNECT;
}
