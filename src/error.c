/* Return-code names and the per-thread detail message. A thread-local buffer (not a per-handle
 * one) because one dlock_client is shared by many threads: a message stored in the client would
 * be overwritten by another thread before the caller could read it. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[512];

const char *dlock_version(void) {
    return DLOCK_VERSION_STRING;
}

const char *dlock_strerror(int rc) {
    switch (rc) {
    case DLOCK_OK:
        return "success";
    case DLOCK_NOT_ACQUIRED:
        return "not acquired: another holder has the lock";
    case DLOCK_NOT_HELD:
        return "not held: this handle does not hold the lock";
    case DLOCK_SUPERSEDED:
        return "superseded by a later call";
    case DLOCK_EINVAL:
        return "invalid argument";
    case DLOCK_ENOMEM:
        return "out of memory";
    case DLOCK_EIO:
        return "connection broken";
    case DLOCK_ETIMEDOUT:
        return "timed out";
    case DLOCK_ECONNECT:
        return "cannot connect";
    case DLOCK_EAUTH:
        return "authentication failed";
    case DLOCK_ETLS:
        return "TLS error";
    case DLOCK_ESERVER:
        return "server error";
    case DLOCK_EPROTO:
        return "protocol error";
    case DLOCK_EHTTP:
        return "HTTP error";
    case DLOCK_ESTATE:
        return "invalid state";
    case DLOCK_ESYS:
        return "system error";
    case DLOCK_ECANCELED:
        return "cancelled";
    case DLOCK_EREPLICAS:
        return "too few replicas acknowledged";
    default:
        return "unknown dlock code";
    }
}

const char *dlock_errmsg(void) {
    return errbuf;
}

void dlock__err_clear(void) {
    errbuf[0] = '\0';
}

int dlock__err(int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return rc;
}

int dlock__err_prefix(int rc, const char *fmt, ...) {
    char prefix[256], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    /* Truncation is fine here: the prefix matters most and comes first. */
    if (snprintf(errbuf, sizeof errbuf, "%s: %s", prefix, old) < 0) {
        errbuf[0] = '\0';
    }
    return rc;
}
