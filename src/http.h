/* The libcurl settings every HTTP request of dlock shares: the REST transport's commands
 * (rest.c) and the SSE streams of REST waiters (sse.c). */
#ifndef DLOCK_HTTP_H
#define DLOCK_HTTP_H

#include "internal.h"

#include <curl/curl.h>

/* Sets on `h`: HTTP/2 where offered, TCP_NODELAY and keep-alive, no redirects (a redirect would
 * carry the token to another host), http and https only, `connect_to` (may be NULL: the
 * CURLOPT_CONNECT_TO list that sends the URL's host to tls_server_name's address), and for
 * https the client's TLS options (peer verified unless tls_insecure). */
void dlock__http_setup(CURL *h, const dlock__config *cfg, struct curl_slist *connect_to);

#endif
