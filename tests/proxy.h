/* A TCP proxy for the tests, on a thread of the test program: it relays bytes between each
 * accepted client and a fresh connection to an upstream port on 127.0.0.1, and can
 *   - lose the next reply: the next bytes coming back from the server are not delivered (or only
 *     the first few), both sides are closed instead (the command has run on the server; the
 *     client never hears all of it);
 *   - deliver late: on connections that have sent a given pattern (e.g. "SUBSCRIBE"), every
 *     byte from the server is delivered a fixed time after it arrived.
 * Assertions happen only in dlt_proxy_start, so the other calls are safe from any thread. */
#ifndef DLOCK_TEST_PROXY_H
#define DLOCK_TEST_PROXY_H

#include <stdint.h>

typedef struct dlt_proxy dlt_proxy;

/* Starts a proxy in front of 127.0.0.1:upstream_port. Asserts. */
dlt_proxy *dlt_proxy_start(int upstream_port);
/* The port it listens on. */
int dlt_proxy_port(const dlt_proxy *p);
/* The next reply on any connection is lost (one reply, then the proxy relays normally again). */
void dlt_proxy_cut_next_reply(dlt_proxy *p);
/* The same, but the first `bytes` bytes of that reply are delivered before both sides are closed:
 * the client has read part of a reply when the connection breaks. */
void dlt_proxy_cut_next_reply_after(dlt_proxy *p, int bytes);
/* How many replies have been lost so far. */
int dlt_proxy_cuts_done(const dlt_proxy *p);
/* Connections that send `pattern` (from then on) get the server's bytes `ms` late. Call before
 * such connections send it; pattern is copied (at most 63 bytes). */
void dlt_proxy_delay_after(dlt_proxy *p, const char *pattern, int64_t ms);
/* Closes every relayed connection (both sides), as a network cut would. */
void dlt_proxy_cut_all(dlt_proxy *p);
/* on = 1: closes every relayed connection, and closes each new one at once, without reaching the
 * server (Redis out of reach); on = 0: relays again. */
void dlt_proxy_refuse(dlt_proxy *p, int on);
/* Stops the thread, closes everything, frees. */
void dlt_proxy_stop(dlt_proxy *p);

#endif
