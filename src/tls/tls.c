/* The TLS transport on OpenSSL 3, through a BIO over the connector's buffers (docs/PROTOCOL.md
 * appendix B, ARCHITECTURE.md section 16). */
#include "tls/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"

#define READ_CHUNK 16384

struct negio__tls_shared {
    atomic_int refs;
    pthread_mutex_t lock;
    int built; /* 1 built, -1 failed */
    int rc;    /* the failure's code */
    char failure[NEGIO__DETAIL_MAX];
    SSL_CTX *ctx;
    BIO_METHOD *bio; /* the transport BIO's methods, for every SSL made from CTX */
    int ephemeral;   /* server: the ephemeral self-signed certificate */
    int verify_peer; /* client: the server's certificate is verified */
};

/* The connector's buffers as OpenSSL's transport: records are read straight from the received
 * bytes and written straight into the bytes for the wire, with no memory BIO copy between. */
typedef struct bio_io {
    negio__buf *rd; /* received TLS bytes, consumed as OpenSSL reads them */
    negio__buf *wr; /* TLS bytes for the wire */
    int nomem;      /* a write could not be buffered */
} bio_io;

struct negio__tls {
    SSL *ssl;
    BIO *bio; /* owned by ssl */
    bio_io io;
    negio_role role;
    int done;
    int peer_closed;
    int shutdown_sent;
    int renegotiation; /* a renegotiation was attempted */
    int cert_free;
    int verify_peer;
    char *peer; /* the verified peer certificate's subject */
    int peer_verified;
    const char *version;
    const char *cipher;
};

/* ---- errors ------------------------------------------------------------------------------- */

/* Appends OpenSSL's queued errors to DETAIL after PREFIX and empties the queue. */
static void ssl_detail(char *detail, const char *prefix)
{
    char text[NEGIO__DETAIL_MAX];
    size_t n = (size_t)snprintf(text, sizeof(text), "%s", prefix);
    unsigned long e;
    const char *sep = ": ";
    while ((e = ERR_get_error()) != 0) {
        if (n + 3 < sizeof(text)) {
            char one[256];
            ERR_error_string_n(e, one, sizeof(one));
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s", sep, one);
            sep = "; ";
        }
    }
    if (n >= sizeof(text))
        n = sizeof(text) - 1;
    negio__detail(detail, "%s", text);
}

/* Maps the first queued OpenSSL error of a failed handshake or read to a negio code. */
static int classify(const negio__tls *t, char *detail)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    long vr = SSL_get_verify_result(t->ssl);
    if (!t->done && vr != X509_V_OK && t->verify_peer) {
        char why[NEGIO__DETAIL_MAX];
        snprintf(why, sizeof(why), "TLS: the peer's certificate failed verification (%s)",
                 X509_verify_cert_error_string(vr));
        ssl_detail(detail, why);
        return NEGIO_ERR_HANDSHAKE;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
        ssl_detail(detail, "TLS: the peer sent an alert");
        return NEGIO_ERR_PEER;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC) {
        ssl_detail(detail, "TLS: a record failed verification");
        return NEGIO_ERR_INTEGRITY;
    }
    if (e == 0) {
        negio__detail(detail, "TLS: %s failed without a reason",
                      t->done ? "reading" : "the handshake");
        return t->done ? NEGIO_ERR_PROTOCOL : NEGIO_ERR_HANDSHAKE;
    }
    ssl_detail(detail, t->done ? "TLS" : "TLS handshake failed");
    return t->done ? NEGIO_ERR_PROTOCOL : NEGIO_ERR_HANDSHAKE;
}

/* ---- the transport BIO -------------------------------------------------------------------- */

static int bio_write(BIO *b, const char *data, int len)
{
    bio_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (io->wr == NULL || len < 0)
        return -1;
    if (negio__buf_append(io->wr, data, (size_t)len) < 0) {
        io->nomem = 1;
        return -1; /* no retry flag: a hard failure */
    }
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    bio_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = io->rd != NULL ? negio__buf_size(io->rd) : 0;
    if (avail == 0) {
        BIO_set_retry_read(b); /* more will come: never an end of stream here */
        return -1;
    }
    size_t n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(out, negio__buf_data(io->rd), n);
    negio__buf_consume(io->rd, n);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    bio_io *io = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return io->rd != NULL ? (long)negio__buf_size(io->rd) : 0;
    case BIO_CTRL_WPENDING:
        return 0;
    default:
        return 0;
    }
}

static BIO_METHOD *make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "negio");
    if (m != NULL && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl))
        return m;
    BIO_meth_free(m);
    return NULL;
}

/* ---- the shared context ----------------------------------------------------------------- */

negio__tls_shared *negio__tls_shared_new(void)
{
    negio__tls_shared *s = negio__calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void negio__tls_shared_ref(negio__tls_shared *s)
{
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
}

void negio__tls_shared_unref(negio__tls_shared *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    SSL_CTX_free(s->ctx);
    BIO_meth_free(s->bio);
    pthread_mutex_destroy(&s->lock);
    negio__free(s);
}

/* An ephemeral self-signed certificate for the certificate-free mode: a fresh P-256 key; the
 * client never checks it, channel bindings carry the proof. */
static int use_ephemeral_cert(SSL_CTX *ctx, char *detail)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    int ok = key != NULL && x != NULL && name != NULL && X509_set_version(x, 2) &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"negio ephemeral", -1, -1, 0) &&
             X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
             X509_set_pubkey(x, key) && X509_sign(x, key, EVP_sha256()) > 0 &&
             SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    if (!ok)
        ssl_detail(detail, "TLS: cannot make the ephemeral certificate");
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok ? 0 : NEGIO_ERR_CREDENTIALS;
}

static void on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg);

static int build_ctx(negio__tls_shared *s, const negio_config *cfg, char *detail)
{
    int server = cfg->role == NEGIO_ROLE_SERVER;
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        ssl_detail(detail, "TLS: cannot create a context");
        return NEGIO_ERR_NOMEM;
    }
    s->ctx = ctx;
    if ((s->bio = make_bio_method()) == NULL) {
        ssl_detail(detail, "TLS: cannot create the transport");
        return NEGIO_ERR_NOMEM;
    }
    /* TLS 1.3 by default, 1.2 allowed, nothing older; no renegotiation, no resumption (every
     * connection authenticates afresh), no compression */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        (cfg->tls_max_version == 12 && SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != 1)) {
        ssl_detail(detail, "TLS: cannot set the minimum version");
        return NEGIO_ERR_CREDENTIALS;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_msg_callback(ctx, on_message);
    if (cfg->tls_cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
            char why[NEGIO__DETAIL_MAX];
            snprintf(why, sizeof(why), "TLS: cannot load the certificate %s", cfg->tls_cert);
            ssl_detail(detail, why);
            return NEGIO_ERR_CREDENTIALS;
        }
        const char *key = cfg->tls_key != NULL ? cfg->tls_key : cfg->tls_cert;
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            char why[NEGIO__DETAIL_MAX];
            snprintf(why, sizeof(why), "TLS: cannot load the private key %s for %s", key,
                     cfg->tls_cert);
            ssl_detail(detail, why);
            return NEGIO_ERR_CREDENTIALS;
        }
    } else if (server && cfg->transport == NEGIO_TRANSPORT_TLS) {
        negio__detail(detail, "TLS: a server needs a certificate and key (only the stacked "
                              "transport has a certificate-free mode)");
        return NEGIO_ERR_CREDENTIALS;
    } else if (server) {
        int rc = use_ephemeral_cert(ctx, detail);
        if (rc < 0)
            return rc;
        s->ephemeral = 1;
    }
    if (cfg->tls_ca != NULL && SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
        char why[NEGIO__DETAIL_MAX];
        snprintf(why, sizeof(why), "TLS: cannot load the CA file %s", cfg->tls_ca);
        ssl_detail(detail, why);
        return NEGIO_ERR_CREDENTIALS;
    }
    if (server) {
        if (cfg->tls_require_client_cert && cfg->tls_ca == NULL) {
            negio__detail(detail, "TLS: requiring client certificates needs a CA file");
            return NEGIO_ERR_CREDENTIALS;
        }
        if (cfg->tls_ca != NULL)
            SSL_CTX_set_verify(
                ctx,
                SSL_VERIFY_PEER |
                    (cfg->tls_require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                NULL);
    } else if (cfg->tls_ca != NULL || cfg->transport == NEGIO_TRANSPORT_TLS) {
        if (cfg->tls_ca == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1) {
            ssl_detail(detail, "TLS: cannot load the system's trusted certificates");
            return NEGIO_ERR_CREDENTIALS;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        s->verify_peer = 1;
    }
    return 0;
}

int negio__tls_shared_build(negio__tls_shared *s, const negio_config *cfg, char *detail)
{
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (s->built == 0) {
        ERR_clear_error();
        rc = build_ctx(s, cfg, s->failure);
        s->built = rc < 0 ? -1 : 1;
        s->rc = rc;
        if (rc < 0) {
            SSL_CTX_free(s->ctx);
            s->ctx = NULL;
            BIO_meth_free(s->bio);
            s->bio = NULL;
        }
    }
    if (s->built < 0) {
        rc = s->rc;
        negio__detail(detail, "%s", s->failure);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- one connection --------------------------------------------------------------------- */

/* Renegotiation is refused outright: any handshake message but a TLS 1.3 post-handshake one
 * (NewSessionTicket, KeyUpdate) after the handshake ends the connection. OpenSSL alone would
 * only decline it with a warning. */
static void on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
    (void)arg;
    negio__tls *t = SSL_get_app_data(ssl);
    if (t == NULL || write_p || !t->done || content_type != SSL3_RT_HANDSHAKE || len < 1)
        return;
    uint8_t type = ((const uint8_t *)buf)[0];
    if (version < TLS1_3_VERSION ||
        (type != SSL3_MT_NEWSESSION_TICKET && type != SSL3_MT_KEY_UPDATE))
        t->renegotiation = 1;
}

/* The host part of "service@host". */
static const char *target_host(const negio_config *cfg)
{
    if (cfg->tls_host != NULL)
        return cfg->tls_host;
    const char *at = cfg->service != NULL ? strchr(cfg->service, '@') : NULL;
    return at != NULL ? at + 1 : NULL;
}

static int is_ip_literal(const char *host)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
    ASN1_OCTET_STRING_free(ip);
    return ip != NULL;
}

/* A failed OpenSSL call: out of memory in the transport, or what OpenSSL says. */
static int failed(negio__tls *t, char *detail)
{
    if (t->io.nomem) {
        negio__detail(detail, "out of memory buffering TLS output");
        return NEGIO_ERR_NOMEM;
    }
    return classify(t, detail);
}

int negio__tls_new(negio__tls **out, const negio_config *cfg, negio__buf *wire_out, char *detail)
{
    *out = NULL;
    if (cfg->tls_shared == NULL) {
        negio__detail(detail, "out of memory");
        return NEGIO_ERR_NOMEM;
    }
    int rc = negio__tls_shared_build(cfg->tls_shared, cfg, detail);
    if (rc < 0)
        return rc;
    negio__tls *t = negio__calloc(1, sizeof(*t));
    if (t == NULL) {
        negio__detail(detail, "out of memory");
        return NEGIO_ERR_NOMEM;
    }
    t->role = cfg->role;
    t->verify_peer =
        cfg->tls_shared->verify_peer || (cfg->role == NEGIO_ROLE_SERVER && cfg->tls_ca != NULL);
    t->cert_free = cfg->transport == NEGIO_TRANSPORT_TLS_NEGOTIATE &&
                   (cfg->role == NEGIO_ROLE_SERVER ? cfg->tls_shared->ephemeral
                                                   : !cfg->tls_shared->verify_peer);
    ERR_clear_error();
    t->ssl = SSL_new(cfg->tls_shared->ctx);
    t->bio = BIO_new(cfg->tls_shared->bio);
    if (t->ssl == NULL || t->bio == NULL) {
        BIO_free(t->bio);
        t->bio = NULL;
        negio__tls_del(t);
        ssl_detail(detail, "TLS: out of memory");
        return NEGIO_ERR_NOMEM;
    }
    BIO_set_data(t->bio, &t->io);
    BIO_set_init(t->bio, 1);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* one BIO both ways: SSL takes the one reference */
    SSL_set_app_data(t->ssl, t);
    if (cfg->role == NEGIO_ROLE_CLIENT) {
        const char *host = target_host(cfg);
        if (host != NULL && !is_ip_literal(host) && SSL_set_tlsext_host_name(t->ssl, host) != 1) {
            ssl_detail(detail, "TLS: cannot set the server name");
            negio__tls_del(t);
            return NEGIO_ERR_NOMEM;
        }
        if (t->verify_peer) {
            if (host == NULL) {
                negio__detail(detail, "TLS: no host name to verify the server's certificate "
                                      "against");
                negio__tls_del(t);
                return NEGIO_ERR_CREDENTIALS;
            }
            if (SSL_set1_host(t->ssl, host) != 1) {
                ssl_detail(detail, "TLS: cannot set the host name to verify");
                negio__tls_del(t);
                return NEGIO_ERR_NOMEM;
            }
        }
        SSL_set_connect_state(t->ssl);
        t->io = (bio_io){NULL, wire_out, 0};
        int r = SSL_do_handshake(t->ssl); /* the ClientHello */
        t->io.wr = NULL;
        if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
            rc = t->io.nomem ? NEGIO_ERR_NOMEM : classify(t, detail);
            if (rc == NEGIO_ERR_NOMEM)
                negio__detail(detail, "out of memory buffering TLS output");
            negio__tls_del(t);
            return rc;
        }
    } else {
        SSL_set_accept_state(t->ssl);
    }
    *out = t;
    return 0;
}

void negio__tls_del(negio__tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    negio__free(t->peer);
    negio__free(t);
}

/* After the handshake: what was negotiated, and who the peer is. */
static int on_handshake_done(negio__tls *t, char *detail)
{
    t->done = 1;
    t->version = SSL_get_version(t->ssl);
    t->cipher = SSL_CIPHER_standard_name(SSL_get_current_cipher(t->ssl));
    if (SSL_version(t->ssl) < TLS1_2_VERSION) { /* the context refuses it; checked again */
        negio__detail(detail, "TLS: %s negotiated, at least TLS 1.2 is required", t->version);
        return NEGIO_ERR_POLICY;
    }
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer != NULL && t->verify_peer && SSL_get_verify_result(t->ssl) == X509_V_OK) {
        BIO *mem = BIO_new(BIO_s_mem());
        char *data = NULL;
        long n = 0;
        if (mem == NULL ||
            X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) < 0 ||
            (n = BIO_get_mem_data(mem, &data)) < 0 ||
            (t->peer = negio__strndup(data != NULL ? data : "", (size_t)n)) == NULL) {
            BIO_free(mem);
            negio__detail(detail, "out of memory reading the peer's certificate");
            return NEGIO_ERR_NOMEM;
        }
        BIO_free(mem);
        t->peer_verified = 1;
    }
    return 0;
}

int negio__tls_recv(negio__tls *t, negio__buf *wire, negio__buf *plain, negio__buf *wire_out,
                    char *detail)
{
    int rc = 0;
    t->io = (bio_io){wire, wire_out, 0};
    ERR_clear_error();
    if (!t->done) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ)
                rc = failed(t, detail);
            goto out;
        }
        if ((rc = on_handshake_done(t, detail)) < 0)
            goto out;
    }
    while (!t->peer_closed) {
        if (negio__buf_reserve(plain, READ_CHUNK) < 0) {
            negio__detail(detail, "out of memory buffering TLS plaintext");
            rc = NEGIO_ERR_NOMEM;
            goto out;
        }
        size_t room = plain->cap - plain->len;
        int r = SSL_read(t->ssl, plain->p + plain->len, room > INT32_MAX ? INT32_MAX : (int)room);
        if (r > 0) {
            plain->len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (t->renegotiation || e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            t->peer_closed = 1;
            negio__buf_clear(wire); /* nothing after close_notify counts */
            break;
        }
        rc = failed(t, detail);
        goto out;
    }
    if (t->renegotiation) {
        negio__detail(detail, "TLS: the peer attempted a renegotiation, which is refused");
        rc = NEGIO_ERR_PROTOCOL;
    } else if (t->io.nomem) {
        rc = failed(t, detail);
    }
out:
    t->io = (bio_io){NULL, NULL, 0};
    return rc;
}

int negio__tls_send(negio__tls *t, negio__buf *plain, negio__buf *wire_out, char *detail)
{
    int rc = 0;
    if (!t->done || t->shutdown_sent)
        return 0;
    t->io = (bio_io){NULL, wire_out, 0};
    while (negio__buf_size(plain) > 0) {
        size_t n = negio__buf_size(plain);
        if (n > (1u << 30))
            n = 1u << 30;
        ERR_clear_error();
        int r = SSL_write(t->ssl, negio__buf_data(plain), (int)n);
        if (r <= 0) { /* our BIO never blocks: out of memory, or OpenSSL's own failure */
            rc = failed(t, detail);
            break;
        }
        negio__buf_consume(plain, (size_t)r);
    }
    t->io = (bio_io){NULL, NULL, 0};
    return rc;
}

void negio__tls_shutdown(negio__tls *t, negio__buf *wire_out)
{
    if (t->shutdown_sent)
        return;
    t->shutdown_sent = 1;
    if (!t->done)
        return; /* an alert, if any, was produced by the failure itself */
    ERR_clear_error();
    t->io = (bio_io){NULL, wire_out, 0};
    (void)SSL_shutdown(t->ssl);
    t->io = (bio_io){NULL, NULL, 0};
    ERR_clear_error();
}

int negio__tls_done(const negio__tls *t)
{
    return t->done;
}

int negio__tls_peer_closed(const negio__tls *t)
{
    return t->peer_closed;
}

int negio__tls_shutdown_sent(const negio__tls *t)
{
    return t->shutdown_sent;
}

int negio__tls_cert_free(const negio__tls *t)
{
    return t->cert_free;
}

int negio__tls_bindings(negio__tls *t, uint8_t out[NEGIO__TLS_CB_MAX], char *detail)
{
    static const char exporter[] = "tls-exporter:";
    static const char end_point[] = "tls-server-end-point:";
    if (SSL_version(t->ssl) >= TLS1_3_VERSION) {
        /* RFC 9266: 32 bytes of exporter output, label EXPORTER-Channel-Binding, no context */
        memcpy(out, exporter, sizeof(exporter) - 1);
        static const char label[] = "EXPORTER-Channel-Binding";
        if (SSL_export_keying_material(t->ssl, out + sizeof(exporter) - 1, 32, label,
                                       sizeof(label) - 1, NULL, 0, 0) != 1) {
            ssl_detail(detail, "TLS: cannot export the channel binding");
            return NEGIO_ERR_HANDSHAKE;
        }
        return (int)(sizeof(exporter) - 1 + 32);
    }
    /* RFC 5929 section 4: the hash of the server's certificate, with its signature's hash
     * algorithm, SHA-256 for MD5 and SHA-1 */
    X509 *cert = t->role == NEGIO_ROLE_SERVER ? SSL_get_certificate(t->ssl)
                                              : SSL_get0_peer_certificate(t->ssl);
    int md_nid = NID_undef;
    if (cert == NULL || !X509_get_signature_info(cert, &md_nid, NULL, NULL, NULL)) {
        negio__detail(detail, "TLS: no server certificate to bind the authentication to");
        return NEGIO_ERR_HANDSHAKE;
    }
    const EVP_MD *md = (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef)
                           ? EVP_sha256()
                           : EVP_get_digestbynid(md_nid);
    unsigned len = 0;
    memcpy(out, end_point, sizeof(end_point) - 1);
    if (md == NULL || EVP_MD_get_size(md) > NEGIO__TLS_CB_MAX - (int)sizeof(end_point) ||
        X509_digest(cert, md, out + sizeof(end_point) - 1, &len) != 1) {
        ssl_detail(detail, "TLS: cannot hash the server's certificate");
        return NEGIO_ERR_HANDSHAKE;
    }
    return (int)(sizeof(end_point) - 1 + len);
}

void negio__tls_info(const negio__tls *t, negio_auth_info *info)
{
    info->tls_version = t->version;
    info->tls_cipher = t->cipher;
    info->tls_peer = t->peer;
    info->tls_peer_verified = t->peer_verified;
}
