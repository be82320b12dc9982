/* The libcurl settings shared by rest.c and sse.c (http.h). */
#include "fmacros.h"

#include "http.h"

void dlock__http_setup(CURL *h, const dlock__config *cfg, struct curl_slist *connect_to) {
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Lock commands are tiny request/reply pairs: Nagle would only add latency. */
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Redirects are not followed: a redirect would carry the token to another host. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (connect_to != NULL) {
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
    }
    if (cfg->url.scheme != DLOCK__SCHEME_HTTPS) {
        return;
    }
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cfg->tls_insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cfg->tls_insecure ? 0L : 2L);
    if (cfg->tls_ca_file != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->tls_ca_file);
    }
    if (cfg->tls_ca_dir != NULL) {
        curl_easy_setopt(h, CURLOPT_CAPATH, cfg->tls_ca_dir);
    }
    if (cfg->tls_cert_file != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->tls_cert_file);
    }
    if (cfg->tls_key_file != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLKEY, cfg->tls_key_file);
    }
}
