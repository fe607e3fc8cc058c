/* The OpenSSL test peer over memory BIOs (tls_peer.h). */
#include "support/tls_peer.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

struct test_tls_peer {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio; /* owned by SSL: what the other side sent */
    BIO *wbio; /* owned by SSL: records to send, moved into OUT by drain() */
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    int verifies; /* a CA was given: the verify result is worth reporting */
    int eof;      /* test_tls_peer_feed_eof was called */
    int fail;     /* sticky: 0, TEST_TLS_ERR or TEST_TLS_EOF */
    char err[1024];
    char subject[512];
};

/* ---- errors ---------------------------------------------------------------------------------- */

static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

static const char *ssl_error_name(int e)
{
    switch (e) {
    case SSL_ERROR_NONE:
        return "SSL_ERROR_NONE";
    case SSL_ERROR_SSL:
        return "SSL_ERROR_SSL";
    case SSL_ERROR_SYSCALL:
        return "SSL_ERROR_SYSCALL";
    case SSL_ERROR_ZERO_RETURN:
        return "SSL_ERROR_ZERO_RETURN";
    case SSL_ERROR_WANT_READ:
        return "SSL_ERROR_WANT_READ";
    case SSL_ERROR_WANT_WRITE:
        return "SSL_ERROR_WANT_WRITE";
    default:
        return "SSL_ERROR_?";
    }
}

/* Takes OpenSSL's error queue (of this thread) into P->err after "OP: WHAT". */
static void take_errors(test_tls_peer *p, const char *op, const char *what)
{
    snprintf(p->err, sizeof(p->err), "%s: %s", op, what);
    const char *data;
    int flags, first = 1;
    unsigned long code;
    while ((code = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char text[256];
        ERR_error_string_n(code, text, sizeof(text));
        appendf(p->err, sizeof(p->err), "%s%s", first ? ": " : "; ", text);
        if ((flags & ERR_TXT_STRING) && data != NULL && data[0] != '\0')
            appendf(p->err, sizeof(p->err), " (%s)", data);
        first = 0;
    }
    long v = SSL_get_verify_result(p->ssl);
    if (p->verifies && v != X509_V_OK)
        appendf(p->err, sizeof(p->err), " (verify: %s)", X509_verify_cert_error_string(v));
}

/* A call failed with SSL_get_error() code E: record why and make the failure sticky. */
static int failed(test_tls_peer *p, const char *op, int e)
{
    int code = TEST_TLS_ERR;
    /* OpenSSL 3 reports a transport that ends before close_notify as SSL_R_UNEXPECTED_EOF_WHILE_
     * READING (1.1.1 as SSL_ERROR_SYSCALL with errno 0) */
    if (p->eof &&
        (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) ==
                                                              SSL_R_UNEXPECTED_EOF_WHILE_READING)))
        code = TEST_TLS_EOF;
    take_errors(p, op, ssl_error_name(e));
    p->fail = code;
    return code;
}

/* A refused request that leaves the connection as it was (not sticky). */
static int refused(test_tls_peer *p, const char *op, const char *why)
{
    take_errors(p, op, why);
    return TEST_TLS_ERR;
}

static int wants_io(int e)
{
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* ---- creation -------------------------------------------------------------------------------- */

static int setup_fail(const char *what, const char *arg)
{
    fprintf(stderr, "tls peer: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    ERR_print_errors_fp(stderr);
    return -1;
}

static int is_ip_literal(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int configure(test_tls_peer *p, const test_tls_opts *o)
{
    int server = o->role == TEST_TLS_SERVER;
    p->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (p->ctx == NULL)
        return setup_fail("SSL_CTX_new", NULL);
    /* first: the level also decides which certificates and keys are acceptable below */
    if (o->set_security_level)
        SSL_CTX_set_security_level(p->ctx, o->security_level);
    if (o->min_version != 0 && !SSL_CTX_set_min_proto_version(p->ctx, o->min_version))
        return setup_fail("min_version", NULL);
    if (o->max_version != 0 && !SSL_CTX_set_max_proto_version(p->ctx, o->max_version))
        return setup_fail("max_version", NULL);
    if (o->cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(p->ctx, o->cert) != 1)
            return setup_fail("certificate", o->cert);
        if (SSL_CTX_use_PrivateKey_file(p->ctx, o->key ? o->key : o->cert, SSL_FILETYPE_PEM) != 1)
            return setup_fail("key", o->key);
        if (SSL_CTX_check_private_key(p->ctx) != 1)
            return setup_fail("key does not match certificate", o->key);
    }
    if (o->ca != NULL) {
        if (SSL_CTX_load_verify_locations(p->ctx, o->ca, NULL) != 1)
            return setup_fail("CA file", o->ca);
        int mode = SSL_VERIFY_PEER;
        if (server) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
            if (names == NULL)
                return setup_fail("CA names", o->ca);
            SSL_CTX_set_client_CA_list(p->ctx, names);
            if (o->require_client_cert)
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(p->ctx, mode, NULL);
        p->verifies = 1;
    } else {
        SSL_CTX_set_verify(p->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (server && o->allow_client_renegotiation)
        SSL_CTX_set_options(p->ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);

    p->ssl = SSL_new(p->ctx);
    if (p->ssl == NULL)
        return setup_fail("SSL_new", NULL);
    if (!server && o->host != NULL) {
        int ok = is_ip_literal(o->host)
                     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), o->host)
                     : SSL_set1_host(p->ssl, o->host);
        if (ok != 1)
            return setup_fail("host", o->host);
    }
    if (!server && o->sni != NULL && SSL_set_tlsext_host_name(p->ssl, o->sni) != 1)
        return setup_fail("sni", o->sni);
    p->rbio = BIO_new(BIO_s_mem());
    p->wbio = BIO_new(BIO_s_mem());
    if (p->rbio == NULL || p->wbio == NULL) {
        BIO_free(p->rbio);
        BIO_free(p->wbio);
        p->rbio = p->wbio = NULL;
        return setup_fail("BIO_new", NULL);
    }
    SSL_set_bio(p->ssl, p->rbio, p->wbio);
    if (server)
        SSL_set_accept_state(p->ssl);
    else
        SSL_set_connect_state(p->ssl);
    return 0;
}

int test_tls_peer_new(test_tls_peer **out, const test_tls_opts *opts)
{
    *out = NULL;
    test_tls_peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return setup_fail("out of memory", NULL);
    if (configure(p, opts) != 0) {
        test_tls_peer_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void test_tls_peer_free(test_tls_peer *p)
{
    if (p == NULL)
        return;
    SSL_free(p->ssl); /* frees both BIOs */
    SSL_CTX_free(p->ctx);
    free(p->out);
    free(p);
}

/* ---- bytes in and out ------------------------------------------------------------------------ */

void test_tls_peer_feed(test_tls_peer *p, const void *data, size_t len)
{
    const char *d = data;
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (BIO_write(p->rbio, d, n) != n)
            abort(); /* a memory BIO fails only when out of memory */
        d += n;
        len -= (size_t)n;
    }
}

void test_tls_peer_feed_eof(test_tls_peer *p)
{
    p->eof = 1;
    /* an empty memory BIO then reads as end of stream instead of "retry later" */
    BIO_set_mem_eof_return(p->rbio, 0);
}

/* Moves the records OpenSSL wrote into P->out, which stays put between calls. */
static void drain(test_tls_peer *p)
{
    size_t pending = BIO_ctrl_pending(p->wbio);
    if (pending == 0)
        return;
    if (p->out_off > 0) {
        memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
        p->out_len -= p->out_off;
        p->out_off = 0;
    }
    if (p->out_len + pending > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 4096;
        while (cap < p->out_len + pending)
            cap *= 2;
        uint8_t *q = realloc(p->out, cap);
        if (q == NULL)
            abort();
        p->out = q;
        p->out_cap = cap;
    }
    while (pending > 0) {
        int n = BIO_read(p->wbio, p->out + p->out_len, pending > INT_MAX ? INT_MAX : (int)pending);
        if (n <= 0)
            abort();
        p->out_len += (size_t)n;
        pending -= (size_t)n;
    }
}

const uint8_t *test_tls_peer_out(test_tls_peer *p, size_t *len)
{
    drain(p);
    *len = p->out_len - p->out_off;
    return *len ? p->out + p->out_off : NULL;
}

void test_tls_peer_consume(test_tls_peer *p, size_t n)
{
    size_t avail = p->out_len - p->out_off;
    p->out_off += n < avail ? n : avail;
    if (p->out_off == p->out_len)
        p->out_off = p->out_len = 0;
}

/* ---- TLS operations -------------------------------------------------------------------------- */

int test_tls_peer_handshake(test_tls_peer *p)
{
    if (p->fail)
        return p->fail;
    ERR_clear_error();
    int r = SSL_do_handshake(p->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(p->ssl, r);
    return wants_io(e) ? 0 : failed(p, "handshake", e);
}

ssize_t test_tls_peer_write(test_tls_peer *p, const void *data, size_t len)
{
    if (p->fail)
        return p->fail;
    if (len == 0)
        return 0;
    size_t written = 0;
    ERR_clear_error();
    if (SSL_write_ex(p->ssl, data, len, &written) == 1)
        return (ssize_t)written;
    int e = SSL_get_error(p->ssl, 0);
    return wants_io(e) ? 0 : failed(p, "write", e);
}

ssize_t test_tls_peer_read(test_tls_peer *p, void *buf, size_t cap)
{
    if (p->fail)
        return p->fail;
    if (cap == 0)
        return 0;
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(p->ssl, buf, cap, &got) == 1)
        return (ssize_t)got;
    int e = SSL_get_error(p->ssl, 0);
    if (e == SSL_ERROR_ZERO_RETURN)
        return TEST_TLS_CLOSED;
    return wants_io(e) ? 0 : failed(p, "read", e);
}

/* Processes incoming records without taking application data (for test_tls_pump). */
static int process(test_tls_peer *p)
{
    if (p->fail)
        return p->fail;
    if (test_tls_peer_closed(p))
        return 0;
    unsigned char c;
    size_t got;
    ERR_clear_error();
    if (SSL_peek_ex(p->ssl, &c, 1, &got) == 1)
        return 0;
    int e = SSL_get_error(p->ssl, 0);
    if (e == SSL_ERROR_ZERO_RETURN || wants_io(e))
        return 0;
    return failed(p, "read", e);
}

int test_tls_peer_renegotiate(test_tls_peer *p)
{
    if (p->fail)
        return p->fail;
    ERR_clear_error();
    if (SSL_version(p->ssl) != TLS1_2_VERSION)
        return refused(p, "renegotiate", "not TLS 1.2");
    if (SSL_renegotiate(p->ssl) != 1)
        return refused(p, "renegotiate", "SSL_renegotiate refused");
    int r = SSL_do_handshake(p->ssl);
    if (r == 1)
        return SSL_renegotiate_pending(p->ssl) ? 0 : 1;
    int e = SSL_get_error(p->ssl, r);
    return wants_io(e) ? 0 : failed(p, "renegotiate", e);
}

int test_tls_peer_renegotiating(const test_tls_peer *p)
{
    return SSL_renegotiate_pending(p->ssl) ? 1 : 0;
}

int test_tls_peer_shutdown(test_tls_peer *p)
{
    if (p->fail)
        return p->fail;
    ERR_clear_error();
    int r = SSL_shutdown(p->ssl);
    if (r == 1)
        return 1;
    if (r == 0)
        return 0;
    int e = SSL_get_error(p->ssl, r);
    return wants_io(e) ? 0 : failed(p, "shutdown", e);
}

int test_tls_peer_closed(const test_tls_peer *p)
{
    return (SSL_get_shutdown(p->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

static int export_keys(test_tls_peer *p, const char *label, const uint8_t *context,
                       size_t context_len, int use_context, uint8_t *out, size_t len)
{
    if (p->fail)
        return TEST_TLS_ERR;
    ERR_clear_error();
    if (!SSL_is_init_finished(p->ssl))
        return refused(p, "exporter", "handshake not complete");
    if (SSL_export_keying_material(p->ssl, out, len, label, strlen(label), context, context_len,
                                   use_context) != 1)
        return refused(p, "exporter", "SSL_export_keying_material failed");
    return 0;
}

int test_tls_peer_exporter(test_tls_peer *p, const char *label, uint8_t *out, size_t len)
{
    return export_keys(p, label, NULL, 0, 0, out, len);
}

int test_tls_peer_exporter_context(test_tls_peer *p, const char *label, const uint8_t *context,
                                   size_t context_len, uint8_t *out, size_t len)
{
    static const uint8_t empty[1] = {0};
    return export_keys(p, label, context ? context : empty, context_len, 1, out, len);
}

const char *test_tls_peer_version(const test_tls_peer *p)
{
    return SSL_get_version(p->ssl);
}

const char *test_tls_peer_subject(test_tls_peer *p)
{
    X509 *x = SSL_get0_peer_certificate(p->ssl);
    if (x == NULL)
        return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    p->subject[0] = '\0';
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, p->subject, (int)sizeof(p->subject) - 1);
        p->subject[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    return p->subject;
}

const char *test_tls_peer_error(const test_tls_peer *p)
{
    return p->err;
}

SSL *test_tls_peer_ssl(test_tls_peer *p)
{
    return p->ssl;
}

/* ---- two peers against each other ------------------------------------------------------------ */

size_t test_tls_move(test_tls_peer *from, test_tls_peer *to, size_t max)
{
    size_t n;
    const uint8_t *d = test_tls_peer_out(from, &n);
    if (max != 0 && n > max)
        n = max;
    if (n > 0) {
        test_tls_peer_feed(to, d, n);
        test_tls_peer_consume(from, n);
    }
    return n;
}

static int established(const test_tls_peer *p)
{
    return SSL_is_init_finished(p->ssl) && !SSL_renegotiate_pending(p->ssl);
}

static void advance(test_tls_peer *p)
{
    if (p->fail)
        return;
    /* a server that sent a HelloRequest is not "in init": it waits for the ClientHello in a read */
    if (SSL_in_before(p->ssl) || SSL_in_init(p->ssl))
        test_tls_peer_handshake(p);
    else
        process(p);
}

int test_tls_pump(test_tls_peer *a, test_tls_peer *b, size_t chunk)
{
    for (;;) {
        advance(a);
        advance(b);
        size_t moved = test_tls_move(a, b, chunk);
        moved += test_tls_move(b, a, chunk);
        if (moved == 0)
            break;
    }
    if (a->fail)
        return a->fail;
    if (b->fail)
        return b->fail;
    return established(a) && established(b) ? 1 : 0;
}
