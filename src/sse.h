/* Pub/sub over the Upstash REST API: one channel streamed as server-sent events from
 * POST {base}/subscribe/<channel> (shared/upstash-rest.md, "SSE subscribe"). subscribe.c uses
 * it for clients of the REST transport; nothing else calls it. */
#ifndef DLOCK_SSE_H
#define DLOCK_SSE_H

#include "internal.h"

typedef struct dlock__sse dlock__sse;

/* Opens a stream on `channel` (len bytes) with cfg's URL, token and TLS settings, and waits for
 * the server's `subscribe,<channel>,<n>` event: from then on a PUBLISH reaches it. Connecting
 * is bounded by cfg->connect_timeout_ms and the whole open by cfg->command_timeout_ms (both
 * capped by the thread's deadline cap). Returns DLOCK_OK with *out, or:
 * - DLOCK_ESTATE when the server does not stream pub/sub (HTTP 400/404/405/501, or a 2xx that
 *   is not text/event-stream): asking again is pointless;
 * - DLOCK_EAUTH (401), DLOCK_EHTTP (another status), DLOCK_ECONNECT, DLOCK_ETLS,
 *   DLOCK_ETIMEDOUT, DLOCK_EIO (the stream ended first), DLOCK_EPROTO, DLOCK_ENOMEM.
 * The message names the server, never the token. */
int dlock__sse_open(const dlock__config *cfg, const char *channel, size_t len, dlock__sse **out);

/* Reads the next event before the monotonic deadline_ms. A message on our channel comes back
 * as the array {"message", channel, payload}, like a RESP pub/sub message; other events (the
 * subscribe confirmation, anything unknown) as a one-element array holding the event's text.
 * Returns DLOCK_OK (clear *out after use), DLOCK_ETIMEDOUT when nothing came, or an error
 * (the stream ended or broke: close it). A deadline already past still takes in what has
 * arrived, so a closed stream is noticed. */
int dlock__sse_read(dlock__sse *s, dlock__reply *out, int64_t deadline_ms);

/* Ends the stream (the server sees the connection close) and frees. NULL is a no-op. */
void dlock__sse_close(dlock__sse *s);

/* The HTTP version the stream negotiated, as libcurl's CURLINFO_HTTP_VERSION reports it
 * (CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_2_0, ...). For the tests. */
long dlock__sse_http_version(const dlock__sse *s);

#endif
