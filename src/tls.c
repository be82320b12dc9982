/* TLS for rediss:// with OpenSSL. Debian's hiredis 0.14 has no TLS, so the connection layer does
 * it: the peer certificate is verified against the CA (system store by default) and its name
 * checked against the host (or tls_server_name) unless the user opts out with tls_insecure. */
#include "fmacros.h"

#include "internal.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

void dlock__tls_error_text(char *buf, size_t size) {
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, size, "unknown TLS error");
    } else {
        ERR_error_string_n(e, buf, size);
    }
    ERR_clear_error();
}

int dlock__tls_ctx_new(const dlock__config *cfg, void **out) {
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        return dlock__err(DLOCK_ENOMEM, "TLS: cannot create context");
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ok;
    if (cfg->tls_ca_file != NULL || cfg->tls_ca_dir != NULL) {
        ok = SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, cfg->tls_ca_dir);
    } else {
        ok = SSL_CTX_set_default_verify_paths(ctx);
    }
    if (ok != 1) {
        dlock__tls_error_text(why, sizeof why);
        SSL_CTX_free(ctx);
        return dlock__err(DLOCK_ETLS, "TLS: cannot load CA (tls_ca_file '%s', tls_ca_dir '%s'): %s",
                          cfg->tls_ca_file ? cfg->tls_ca_file : "(none)",
                          cfg->tls_ca_dir ? cfg->tls_ca_dir : "(none)", why);
    }
    if (cfg->tls_cert_file != NULL || cfg->tls_key_file != NULL) {
        if (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL) {
            SSL_CTX_free(ctx);
            return dlock__err(DLOCK_EINVAL,
                              "TLS: tls_cert_file and tls_key_file must be given together");
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
            dlock__tls_error_text(why, sizeof why);
            SSL_CTX_free(ctx);
            return dlock__err(DLOCK_ETLS, "TLS: cannot load client certificate '%s' / key '%s': %s",
                              cfg->tls_cert_file, cfg->tls_key_file, why);
        }
    }
    SSL_CTX_set_verify(ctx, cfg->tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return DLOCK_OK;
}

void dlock__tls_ctx_free(void *ctx) {
    SSL_CTX_free(ctx);
}

/* Sets SNI and the name or address the certificate must match. */
static int set_peer_name(const dlock__config *cfg, SSL *ssl) {
    const char *name = cfg->tls_server_name != NULL ? cfg->tls_server_name : cfg->url.host;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1) {
        return 0;
    }
    if (cfg->tls_insecure) {
        return 1;
    }
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (is_ip) {
        return X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1;
    }
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return X509_VERIFY_PARAM_set1_host(param, name, 0) == 1;
}

int dlock__tls_handshake(const dlock__config *cfg, void *ctx, int fd, int64_t deadline_ms,
                         void **out) {
    char why[256];
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) {
        return dlock__err(DLOCK_ENOMEM, "TLS: cannot create session");
    }
    if (SSL_set_fd(ssl, fd) != 1 || !set_peer_name(cfg, ssl)) {
        dlock__tls_error_text(why, sizeof why);
        SSL_free(ssl);
        return dlock__err(DLOCK_ETLS, "TLS setup failed: %s", why);
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl);
        if (r == 1) {
            break;
        }
        int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (dlock__poll_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms) !=
                DLOCK_OK) {
                SSL_free(ssl);
                return dlock__err(DLOCK_ETIMEDOUT, "TLS handshake timed out");
            }
            continue;
        }
        long vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK) {
            snprintf(why, sizeof why, "certificate verification failed: %s",
                     X509_verify_cert_error_string(vr));
            ERR_clear_error();
        } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
            snprintf(why, sizeof why, "the server closed the connection during the handshake");
            ERR_clear_error();
        } else {
            dlock__tls_error_text(why, sizeof why);
        }
        SSL_free(ssl);
        return dlock__err(DLOCK_ETLS, "TLS handshake failed: %s", why);
    }
    *out = ssl;
    return DLOCK_OK;
}
