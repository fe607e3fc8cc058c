/* Conformance: the TLS transports. Plain TLS and Negotiate inside TLS (stacked, with channel
 * bindings) between two connectors under every split; the certificate-free mode; certificate,
 * version and renegotiation failures against raw OpenSSL peers; truncation and tampering; and a
 * man in the middle with a certificate the client trusts, over real sockets (tests/support/
 * tls_mitm.c), which must end in a channel-binding failure for Kerberos and NTLM.
 * The general suites (test_dataflow, test_handshake) also run over the TLS transports through
 * NEGIO_TEST_TRANSPORT (tests/CMakeLists.txt). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "support/certs.h"
#include "support/net.h"
#include "support/support.h"
#include "support/tls_mitm.h"
#include "support/tls_peer.h"

static void must(int rc)
{
    assert_int_equal(rc, NEGIO_OK);
}

static const char *split_name(test_split s)
{
    return s == SPLIT_WHOLE ? "whole" : s == SPLIT_BYTE ? "byte" : "random";
}

static void report(const char *what, const test_pair *p)
{
    fprintf(stderr, "[%s] client %s: %s | server %s: %s\n", what, negio_err_name(p->client.err),
            negio_conn_error_detail(p->client.conn), negio_err_name(p->server.err),
            negio_conn_error_detail(p->server.conn));
}

/* Stacked configs for PATH. CA: verify the server with the test CA (else certificate-free). */
static void stacked(test_path path, int with_certs, negio_config **cc, negio_config **sc)
{
    const test_certs *c = test_certs_get();
    *cc = test_client_config(path);
    *sc = test_server_config(path);
    must(negio_config_set_transport(*cc, NEGIO_TRANSPORT_TLS_NEGOTIATE));
    must(negio_config_set_transport(*sc, NEGIO_TRANSPORT_TLS_NEGOTIATE));
    if (with_certs) {
        must(negio_config_set_tls_ca(*cc, c->ca_cert));
        must(negio_config_set_tls_cert(*sc, c->server_cert, c->server_key));
    }
}

/* Plain TLS configs: the server with the test server certificate, the client trusting the CA. */
static void plain_tls(negio_config **cc, negio_config **sc)
{
    const test_certs *c = test_certs_get();
    must(negio_config_new(cc, NEGIO_ROLE_CLIENT));
    must(negio_config_new(sc, NEGIO_ROLE_SERVER));
    must(negio_config_set_service(*cc, "negio@localhost"));
    must(negio_config_set_transport(*cc, NEGIO_TRANSPORT_TLS));
    must(negio_config_set_transport(*sc, NEGIO_TRANSPORT_TLS));
    must(negio_config_set_tls_ca(*cc, c->ca_cert));
    must(negio_config_set_tls_cert(*sc, c->server_cert, c->server_key));
}

static void pair_of(test_pair *p, negio_config *cc, negio_config *sc, test_split split,
                    unsigned seed)
{
    test_pair_init(p, cc, sc, split, seed);
    negio_config_del(cc);
    negio_config_del(sc);
}

static void exchange_and_check(test_pair *p, const negio_level *levels, int nlevels)
{
    static const char msg[] = "inside the channel";
    for (int i = 0; i < nlevels; i++) {
        assert_int_equal(negio_conn_write(p->client.conn, msg, sizeof(msg), levels[i]), 0);
        assert_int_equal(negio_conn_write(p->server.conn, msg, i + 1, levels[i]), 0);
    }
    test_pair_run(p);
    for (int i = 0; i < nlevels; i++) {
        negio_level want = levels[i] == NEGIO_LEVEL_DEFAULT ? NEGIO_LEVEL_NONE : levels[i];
        const test_event *e = test_side_message(&p->server, i);
        assert_non_null(e);
        assert_int_equal(e->level, want);
        assert_int_equal(e->len, sizeof(msg));
        assert_memory_equal(e->data, msg, sizeof(msg));
        e = test_side_message(&p->client, i);
        assert_non_null(e);
        assert_int_equal(e->len, (size_t)i + 1);
    }
    assert_int_equal(p->client.err, 0);
    assert_int_equal(p->server.err, 0);
}

/* Kerberos inside certificate-free TLS: established under every split, bound to the channel,
 * the server authenticated by Kerberos alone, messages at none by default and sign and seal on
 * request. */
static void stacked_kerberos_certificate_free_under_every_split(void **state)
{
    (void)state;
    static const negio_level levels[] = {NEGIO_LEVEL_DEFAULT, NEGIO_LEVEL_NONE, NEGIO_LEVEL_SIGN,
                                         NEGIO_LEVEL_SEAL};
    test_path paths[] = {PATH_KERBEROS, PATH_NEG_KERBEROS};
    for (size_t i = 0; i < 2; i++) {
        for (int split = 0; split < SPLIT_COUNT; split++) {
            negio_config *cc, *sc;
            stacked(paths[i], 0, &cc, &sc);
            test_pair p;
            pair_of(&p, cc, sc, (test_split)split, 7 + split);
            if (!test_pair_establish(&p)) {
                report(split_name((test_split)split), &p);
                fail_msg("stacked %s did not establish", test_path_name(paths[i]));
            }
            negio_auth_info ci = {.size = sizeof(ci)}, si = {.size = sizeof(si)};
            must(negio_conn_auth_info(p.client.conn, &ci));
            must(negio_conn_auth_info(p.server.conn, &si));
            assert_int_equal(ci.mech, NEGIO_MECH_KERBEROS);
            assert_int_equal(ci.channel_bound, 1);
            assert_int_equal(si.channel_bound, 1);
            assert_string_equal(ci.tls_version, "TLSv1.3");
            assert_non_null(ci.tls_cipher);
            assert_int_equal(ci.server_authenticated, 1); /* Kerberos mutual authentication */
            assert_int_equal(ci.tls_peer_verified, 0);    /* nothing checked the certificate */
            assert_null(ci.tls_peer);
            assert_int_equal(si.client_authenticated, 1);
            assert_non_null(strstr(si.peer, "alice@"));
            exchange_and_check(&p, levels, 4);
            test_pair_free(&p);
        }
    }
}

/* Certificate-free: NTLM cannot authenticate the server, so it is refused on both sides unless
 * explicitly allowed; allowed, it works and the server is not authenticated. */
static void certificate_free_refuses_ntlm_unless_allowed(void **state)
{
    (void)state;
    test_path paths[] = {PATH_NEG_NTLM, PATH_NTLM};
    for (size_t i = 0; i < 2; i++) {
        negio_config *cc, *sc;
        stacked(paths[i], 0, &cc, &sc);
        test_pair p;
        pair_of(&p, cc, sc, SPLIT_WHOLE, 1);
        assert_false(test_pair_establish(&p));
        report("certificate-free ntlm", &p);
        assert_true(p.client.err < 0);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 0);
        if (paths[i] == PATH_NTLM)
            assert_non_null(strstr(negio_conn_error_detail(p.client.conn), "refuses NTLM"));
        test_pair_free(&p);

        /* the server alone refusing: a client that allows NTLM is turned away by it */
        stacked(paths[i], 0, &cc, &sc);
        must(negio_config_set_tls_allow_ntlm(cc, 1));
        pair_of(&p, cc, sc, SPLIT_WHOLE, 1);
        assert_false(test_pair_establish(&p));
        report("certificate-free ntlm, server refusing", &p);
        assert_true(p.server.err < 0);
        test_pair_free(&p);

        stacked(paths[i], 0, &cc, &sc);
        must(negio_config_set_tls_allow_ntlm(cc, 1));
        must(negio_config_set_tls_allow_ntlm(sc, 1));
        pair_of(&p, cc, sc, SPLIT_RANDOM, 3);
        if (!test_pair_establish(&p)) {
            report("certificate-free ntlm allowed", &p);
            fail_msg("NTLM allowed did not establish");
        }
        negio_auth_info ci = {.size = sizeof(ci)};
        must(negio_conn_auth_info(p.client.conn, &ci));
        assert_int_equal(ci.mech, NEGIO_MECH_NTLM);
        assert_int_equal(ci.server_authenticated, 0);
        assert_int_equal(ci.channel_bound, 1);
        test_pair_free(&p);
    }
}

/* With certificates, NTLM inside TLS is fine: the certificate authenticates the server. Over
 * TLS 1.3 (tls-exporter) and TLS 1.2 (tls-server-end-point), for every path. */
static void stacked_with_certificates_every_path_both_versions(void **state)
{
    (void)state;
    static const negio_level levels[] = {NEGIO_LEVEL_DEFAULT, NEGIO_LEVEL_SEAL};
    for (int version = 12; version <= 13; version++) {
        for (int path = 0; path < PATH_COUNT; path++) {
            negio_config *cc, *sc;
            stacked((test_path)path, 1, &cc, &sc);
            must(negio_config_set_tls_max_version(cc, version));
            test_pair p;
            pair_of(&p, cc, sc, SPLIT_RANDOM, 11 + path);
            if (!test_pair_establish(&p)) {
                report(test_path_name((test_path)path), &p);
                fail_msg("stacked with certificates did not establish");
            }
            negio_auth_info ci = {.size = sizeof(ci)};
            must(negio_conn_auth_info(p.client.conn, &ci));
            assert_int_equal(ci.mech, test_path_mech((test_path)path));
            assert_string_equal(ci.tls_version, version == 12 ? "TLSv1.2" : "TLSv1.3");
            assert_int_equal(ci.server_authenticated, 1);
            assert_int_equal(ci.tls_peer_verified, 1);
            assert_non_null(strstr(ci.tls_peer, "CN=localhost"));
            assert_int_equal(ci.channel_bound, 1);
            exchange_and_check(&p, levels, 2);
            test_pair_free(&p);
        }
    }
}

/* Plain TLS: no GSS-API; the server authenticated by its certificate; messages at none, large
 * ones split; sign and seal refused as arguments; every split gives the same result. */
static void plain_tls_carries_messages_under_every_split(void **state)
{
    (void)state;
    static const negio_level levels[] = {NEGIO_LEVEL_DEFAULT, NEGIO_LEVEL_NONE};
    size_t big = 3u << 20;
    uint8_t *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (uint8_t)(i * 31 + 7);
    for (int split = 0; split < SPLIT_COUNT; split++) {
        negio_config *cc, *sc;
        plain_tls(&cc, &sc);
        test_pair p;
        pair_of(&p, cc, sc, (test_split)split, 5);
        /* written before establishment: queued and sent once TLS is up */
        must(negio_conn_write(p.client.conn, "early", 5, NEGIO_LEVEL_DEFAULT));
        if (!test_pair_establish(&p)) {
            report("plain tls", &p);
            fail_msg("plain TLS did not establish");
        }
        negio_auth_info ci = {.size = sizeof(ci)}, si = {.size = sizeof(si)};
        must(negio_conn_auth_info(p.client.conn, &ci));
        must(negio_conn_auth_info(p.server.conn, &si));
        assert_int_equal(ci.mech, NEGIO_MECH_NONE);
        assert_int_equal(ci.server_authenticated, 1);
        assert_non_null(strstr(ci.peer, "CN=localhost"));
        assert_int_equal(si.client_authenticated, 0);
        assert_null(si.tls_peer);
        assert_int_equal(si.channel_bound, 0);
        assert_int_equal(negio_conn_write(p.client.conn, "x", 1, NEGIO_LEVEL_SIGN),
                         NEGIO_ERR_INVALID);
        assert_int_equal(negio_conn_write(p.client.conn, "x", 1, NEGIO_LEVEL_SEAL),
                         NEGIO_ERR_INVALID);
        const test_event *e = test_side_message(&p.server, 0);
        assert_non_null(e);
        assert_int_equal(e->len, 5);
        if (split != SPLIT_BYTE) { /* 3 MiB one byte at a time is only slow, not different */
            must(negio_conn_write(p.server.conn, blob, big, NEGIO_LEVEL_DEFAULT));
            test_pair_run(&p);
            e = test_side_message(&p.client, 0);
            assert_non_null(e);
            assert_int_equal(e->len, big);
            assert_memory_equal(e->data, blob, big);
        }
        test_pair_free(&p);
        plain_tls(&cc, &sc);
        pair_of(&p, cc, sc, (test_split)split, 9);
        assert_true(test_pair_establish(&p));
        /* shifts the message indexes: the early message above is not here */
        exchange_and_check(&p, levels, 2);
        test_pair_free(&p);
    }
    free(blob);
    /* plain TLS has no context to sign or seal with: such levels are refused up front */
    negio_config *cc, *sc;
    plain_tls(&cc, &sc);
    must(negio_config_set_min_level(sc, NEGIO_LEVEL_SIGN));
    negio_conn *c;
    assert_int_equal(negio_conn_new(&c, sc), NEGIO_ERR_INVALID);
    negio_config_del(cc);
    negio_config_del(sc);
}

/* Runs a plain TLS pair whose client verifies against CA (NULL: the system store) and whose
 * server presents CERT/KEY; returns the pair after the attempt. */
static void plain_attempt(test_pair *p, const char *ca, const char *cert, const char *key)
{
    negio_config *cc, *sc;
    plain_tls(&cc, &sc);
    must(negio_config_set_tls_ca(cc, ca));
    must(negio_config_set_tls_cert(sc, cert, key));
    pair_of(p, cc, sc, SPLIT_WHOLE, 1);
    test_pair_run(p);
}

static void bad_server_certificates_fail_the_handshake(void **state)
{
    (void)state;
    const test_certs *c = test_certs_get();
    struct {
        const char *what, *ca, *cert, *key, *expect;
    } cases[] = {
        {"wrong host", c->ca_cert, c->wrong_host_cert, c->wrong_host_key, "hostname mismatch"},
        {"expired", c->ca_cert, c->expired_cert, c->expired_key, "expired"},
        {"self-signed", c->ca_cert, c->self_signed_cert, c->self_signed_key, "self-signed"},
        {"other CA", c->other_ca_cert, c->server_cert, c->server_key, "local issuer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_pair p;
        plain_attempt(&p, cases[i].ca, cases[i].cert, cases[i].key);
        report(cases[i].what, &p);
        assert_int_equal(p.client.err, NEGIO_ERR_HANDSHAKE);
        assert_non_null(strstr(negio_conn_error_detail(p.client.conn), cases[i].expect));
        assert_int_equal(p.server.err, NEGIO_ERR_PEER); /* the client's alert */
        assert_int_equal(test_side_count(&p.client, NEGIO_EV_ESTABLISHED), 0);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 0);
        test_pair_free(&p);
    }
    /* the same certificate problems stop the stacked transport before any GSS token */
    negio_config *cc, *sc;
    stacked(PATH_KERBEROS, 1, &cc, &sc);
    must(negio_config_set_tls_cert(sc, c->wrong_host_cert, c->wrong_host_key));
    test_pair p;
    pair_of(&p, cc, sc, SPLIT_WHOLE, 1);
    test_pair_run(&p);
    assert_int_equal(p.client.err, NEGIO_ERR_HANDSHAKE);
    assert_non_null(strstr(negio_conn_error_detail(p.client.conn), "hostname mismatch"));
    test_pair_free(&p);
    /* a bad file is reported at start-up */
    char detail[512];
    must(negio_config_new(&sc, NEGIO_ROLE_SERVER));
    must(negio_config_set_transport(sc, NEGIO_TRANSPORT_TLS));
    must(negio_config_set_tls_cert(sc, "/nonexistent/cert.pem", NULL));
    assert_int_equal(negio_config_tls_check(sc, detail, sizeof(detail)), NEGIO_ERR_CREDENTIALS);
    assert_non_null(strstr(detail, "/nonexistent/cert.pem"));
    /* and a server without certificate in plain TLS cannot exist */
    must(negio_config_set_tls_cert(sc, NULL, NULL));
    assert_int_equal(negio_config_tls_check(sc, detail, sizeof(detail)), NEGIO_ERR_CREDENTIALS);
    negio_config_del(sc);
}

static void client_certificates_are_required_and_verified(void **state)
{
    (void)state;
    const test_certs *c = test_certs_get();
    struct {
        const char *what, *cert, *key;
        int ok;
    } cases[] = {
        {"no client certificate", NULL, NULL, 0},
        {"client certificate from another CA", c->other_client_cert, c->other_client_key, 0},
        {"good client certificate", c->client_cert, c->client_key, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        negio_config *cc, *sc;
        plain_tls(&cc, &sc);
        must(negio_config_set_tls_ca(sc, c->ca_cert));
        must(negio_config_set_tls_require_client_cert(sc, 1));
        if (cases[i].cert != NULL)
            must(negio_config_set_tls_cert(cc, cases[i].cert, cases[i].key));
        test_pair p;
        pair_of(&p, cc, sc, SPLIT_RANDOM, 2);
        int ok = test_pair_establish(&p);
        report(cases[i].what, &p);
        assert_int_equal(ok, cases[i].ok);
        if (ok) {
            negio_auth_info si = {.size = sizeof(si)};
            must(negio_conn_auth_info(p.server.conn, &si));
            assert_int_equal(si.client_authenticated, 1);
            assert_int_equal(si.tls_peer_verified, 1);
            assert_string_equal(si.tls_peer, "CN=alice");
        } else {
            assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
            assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 0);
        }
        test_pair_free(&p);
    }
}

/* ---- against raw OpenSSL peers ----------------------------------------------------------- */

/* Moves bytes between a connector and a raw peer until nothing moves. */
static void raw_run(negio_conn *conn, test_tls_peer *peer, int *err)
{
    for (int guard = 0; guard < 10000; guard++) {
        size_t moved = 0, n;
        const uint8_t *out = negio_conn_send_buf(conn, &n);
        if (n > 0) {
            test_tls_peer_feed(peer, out, n);
            negio_conn_send_done(conn, n);
            moved += n;
        }
        if (!test_tls_peer_renegotiating(peer))
            (void)test_tls_peer_handshake(peer);
        uint8_t buf[4096];
        while (test_tls_peer_read(peer, buf, sizeof(buf)) > 0)
            ;
        const uint8_t *po = test_tls_peer_out(peer, &n);
        if (n > 0) {
            (void)negio_conn_feed(conn, po, n); /* a failed connector takes nothing more */
            test_tls_peer_consume(peer, n);
            moved += n;
        }
        negio_event ev;
        int rc;
        while ((rc = negio_conn_next_event(conn, &ev)) > 0)
            ;
        if (rc < 0)
            *err = rc;
        if (moved == 0)
            return;
    }
    fail_msg("raw peer exchange did not settle");
}

static void tls_1_1_is_refused(void **state)
{
    (void)state;
    const test_certs *c = test_certs_get();
    negio_config *cc, *sc;
    plain_tls(&cc, &sc);
    negio_conn *server;
    must(negio_conn_new(&server, sc));
    test_tls_opts o = {.role = TEST_TLS_CLIENT,
                       .max_version = TLS1_1_VERSION,
                       .set_security_level = 1,
                       .security_level = 0};
    test_tls_peer *peer;
    assert_int_equal(test_tls_peer_new(&peer, &o), 0);
    int err = 0;
    raw_run(server, peer, &err);
    fprintf(stderr, "TLS 1.1 client: %s: %s\n", negio_err_name(err),
            negio_conn_error_detail(server));
    assert_int_equal(err, NEGIO_ERR_HANDSHAKE);
    assert_non_null(strstr(negio_conn_error_detail(server), "protocol"));
    assert_int_equal(test_tls_peer_handshake(peer), TEST_TLS_ERR);
    test_tls_peer_free(peer);
    negio_conn_del(server);
    /* and a negio client never accepts a TLS 1.1 server */
    negio_conn *client;
    must(negio_conn_new(&client, cc));
    test_tls_opts so = {.role = TEST_TLS_SERVER,
                        .cert = c->server_cert,
                        .key = c->server_key,
                        .max_version = TLS1_1_VERSION,
                        .set_security_level = 1,
                        .security_level = 0};
    assert_int_equal(test_tls_peer_new(&peer, &so), 0);
    err = 0;
    raw_run(client, peer, &err);
    fprintf(stderr, "TLS 1.1 server: %s: %s\n", negio_err_name(err),
            negio_conn_error_detail(client));
    assert_true(err == NEGIO_ERR_HANDSHAKE || err == NEGIO_ERR_PEER);
    test_tls_peer_free(peer);
    negio_conn_del(client);
    negio_config_del(cc);
    negio_config_del(sc);
}

/* A TLS 1.2 peer that starts a renegotiation after the handshake ends the connection, in both
 * roles. */
static void renegotiation_is_refused(void **state)
{
    (void)state;
    const test_certs *c = test_certs_get();
    for (int server_side = 0; server_side <= 1; server_side++) {
        negio_config *cc, *sc;
        plain_tls(&cc, &sc);
        negio_conn *conn;
        must(negio_conn_new(&conn, server_side ? sc : cc));
        test_tls_opts o = {.role = server_side ? TEST_TLS_CLIENT : TEST_TLS_SERVER,
                           .max_version = TLS1_2_VERSION,
                           .allow_client_renegotiation = 1};
        if (!server_side) {
            o.cert = c->server_cert;
            o.key = c->server_key;
        }
        test_tls_peer *peer;
        assert_int_equal(test_tls_peer_new(&peer, &o), 0);
        int err = 0;
        raw_run(conn, peer, &err);
        assert_int_equal(err, 0);
        assert_int_equal(test_tls_peer_handshake(peer), 1);
        assert_string_equal(test_tls_peer_version(peer), "TLSv1.2");
        assert_true(test_tls_peer_renegotiate(peer) >= 0);
        raw_run(conn, peer, &err);
        fprintf(stderr, "renegotiation by the %s: %s: %s\n", server_side ? "client" : "server",
                negio_err_name(err), negio_conn_error_detail(conn));
        assert_int_equal(err, NEGIO_ERR_PROTOCOL);
        assert_non_null(strstr(negio_conn_error_detail(conn), "renegotiation"));
        test_tls_peer_free(peer);
        negio_conn_del(conn);
        negio_config_del(cc);
        negio_config_del(sc);
    }
}

/* ---- truncation, close and tampering ----------------------------------------------------- */

static void eof_without_close_notify_is_truncation(void **state)
{
    (void)state;
    for (int stacked_mode = 0; stacked_mode <= 1; stacked_mode++) {
        negio_config *cc, *sc;
        if (stacked_mode)
            stacked(PATH_KERBEROS, 1, &cc, &sc);
        else
            plain_tls(&cc, &sc);
        test_pair p;
        pair_of(&p, cc, sc, SPLIT_WHOLE, 1);
        assert_true(test_pair_establish(&p));
        must(negio_conn_write(p.server.conn, "last words", 10, NEGIO_LEVEL_DEFAULT));
        test_pair_run(&p);
        /* the wire ends: no close_notify, no CLOSE */
        negio_conn_feed_eof(p.client.conn);
        test_side_drain(&p.client);
        assert_int_equal(p.client.err, NEGIO_ERR_TRUNCATED);
        assert_non_null(strstr(negio_conn_error_detail(p.client.conn), "close_notify"));
        assert_int_equal(test_side_count(&p.client, NEGIO_EV_MESSAGE), 1);
        test_pair_free(&p);

        /* a proper close: CLOSE both ways, close_notify both ways, then EOF is no error */
        if (stacked_mode)
            stacked(PATH_KERBEROS, 1, &cc, &sc);
        else
            plain_tls(&cc, &sc);
        pair_of(&p, cc, sc, SPLIT_BYTE, 1);
        assert_true(test_pair_establish(&p));
        must(negio_conn_close(p.client.conn, 0, "done"));
        test_pair_run(&p);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_CLOSED), 1);
        assert_int_equal(test_side_count(&p.client, NEGIO_EV_CLOSED), 1);
        negio_conn_feed_eof(p.client.conn);
        negio_conn_feed_eof(p.server.conn);
        test_side_drain(&p.client);
        test_side_drain(&p.server);
        assert_int_equal(p.client.err, 0);
        assert_int_equal(p.server.err, 0);
        assert_int_equal(negio_conn_want(p.client.conn), 0);
        assert_int_equal(negio_conn_want(p.server.conn), 0);
        test_pair_free(&p);
    }
}

/* A flipped bit anywhere in a TLS record carrying a message: the record fails verification,
 * nothing is delivered, the connection is over. */
static void tampered_records_fail_and_deliver_nothing(void **state)
{
    (void)state;
    negio_config *cc, *sc;
    plain_tls(&cc, &sc);
    test_pair p;
    pair_of(&p, cc, sc, SPLIT_WHOLE, 1);
    assert_true(test_pair_establish(&p));
    must(negio_conn_write(p.client.conn, "attack at dawn", 14, NEGIO_LEVEL_DEFAULT));
    size_t len;
    uint8_t *rec = test_take_output(p.client.conn, &len);
    assert_true(len > 5 + 14);
    /* the first byte after the record header, the middle, the last byte of the tag; each
     * against a fresh pair, as the first failure is final */
    size_t spots[] = {5, len / 2, len - 1};
    for (size_t i = 0; i < 3; i++) {
        negio_config *c2, *s2;
        test_pair q;
        plain_tls(&c2, &s2);
        pair_of(&q, c2, s2, SPLIT_WHOLE, 1);
        assert_true(test_pair_establish(&q));
        must(negio_conn_write(q.client.conn, "attack at dawn", 14, NEGIO_LEVEL_DEFAULT));
        size_t l2;
        uint8_t *r2 = test_take_output(q.client.conn, &l2);
        assert_int_equal(l2, len);
        r2[spots[i]] ^= 0x01;
        negio_conn_feed(q.server.conn, r2, l2);
        test_side_drain(&q.server);
        fprintf(stderr, "flip at %zu: %s: %s\n", spots[i], negio_err_name(q.server.err),
                negio_conn_error_detail(q.server.conn));
        assert_int_equal(q.server.err, NEGIO_ERR_INTEGRITY);
        assert_int_equal(test_side_count(&q.server, NEGIO_EV_MESSAGE), 0);
        free(r2);
        test_pair_free(&q);
    }
    /* the untouched record still arrives */
    negio_conn_feed(p.server.conn, rec, len);
    test_side_drain(&p.server);
    assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 1);
    free(rec);
    test_pair_free(&p);
}

/* ---- a man in the middle over real sockets ----------------------------------------------- */

typedef struct sock_run {
    negio_conn *conn;
    int fd;
    int err;
    char detail[768];
    int established;
    int client;
} sock_run;

/* Drives one connector over a socket until it fails, closes, or 20 seconds pass. A client
 * closes as soon as it is established. */
static void *sock_drive(void *arg)
{
    sock_run *r = arg;
    time_t end = time(NULL) + 20;
    int closed = 0;
    while (time(NULL) < end) {
        while (negio_conn_want(r->conn) & NEGIO_WANT_STEP)
            (void)negio_conn_step(r->conn);
        negio_event ev;
        int rc;
        while ((rc = negio_conn_next_event(r->conn, &ev)) > 0) {
            if (ev.type == NEGIO_EV_ESTABLISHED) {
                r->established = 1;
                if (r->client)
                    negio_conn_close(r->conn, 0, "done");
            }
            if (ev.type == NEGIO_EV_CLOSED)
                closed = 1;
        }
        if (rc < 0 && r->err == 0) {
            r->err = rc;
            snprintf(r->detail, sizeof(r->detail), "%s", negio_conn_error_detail(r->conn));
        }
        size_t n;
        const uint8_t *out;
        while ((out = negio_conn_send_buf(r->conn, &n)) != NULL && n > 0) {
            ssize_t w = send(r->fd, out, n, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            negio_conn_send_done(r->conn, (size_t)w);
        }
        if ((r->err != 0 || closed) && !(negio_conn_want(r->conn) & NEGIO_WANT_WRITE))
            break;
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        uint8_t buf[16384];
        ssize_t got = recv(r->fd, buf, sizeof(buf), 0);
        if (got > 0)
            negio_conn_feed(r->conn, buf, (size_t)got);
        else
            negio_conn_feed_eof(r->conn);
    }
    shutdown(r->fd, SHUT_RDWR);
    return NULL;
}

/* Runs client and server over sockets, through a MITM presenting MITM_CERT when non-NULL. */
static void over_sockets(negio_config *cc, negio_config *sc, const char *mitm_cert,
                         const char *mitm_key, sock_run *client, sock_run *server,
                         unsigned *relayed)
{
    uint16_t port, mport;
    int lfd = test_tcp_listen(&port);
    assert_true(lfd >= 0);
    test_mitm *m = NULL;
    if (mitm_cert != NULL) {
        assert_int_equal(test_mitm_start(&m, mitm_cert, mitm_key, port), 0);
        mport = test_mitm_port(m);
    } else {
        mport = port;
    }
    memset(client, 0, sizeof(*client));
    memset(server, 0, sizeof(*server));
    must(negio_conn_new(&client->conn, cc));
    must(negio_conn_new(&server->conn, sc));
    client->client = 1;
    client->fd = test_tcp_connect(mport);
    assert_true(client->fd >= 0);
    pthread_t tc, ts;
    /* the client first: a MITM connects upstream only once the client's TLS is up */
    pthread_create(&tc, NULL, sock_drive, client);
    server->fd = accept(lfd, NULL, NULL);
    assert_true(server->fd >= 0);
    pthread_create(&ts, NULL, sock_drive, server);
    pthread_join(tc, NULL);
    pthread_join(ts, NULL);
    close(client->fd);
    close(server->fd);
    close(lfd);
    *relayed = 0;
    if (m != NULL) {
        *relayed = test_mitm_relayed(m);
        test_mitm_stop(m);
    }
}

static void mitm_case(const char *what, test_path path, int with_certs, int version)
{
    const test_certs *c = test_certs_get();
    for (int attacked = 0; attacked <= 1; attacked++) {
        negio_config *cc, *sc;
        stacked(path, with_certs, &cc, &sc);
        must(negio_config_set_tls_allow_ntlm(cc, 1));
        must(negio_config_set_tls_allow_ntlm(sc, 1));
        must(negio_config_set_tls_max_version(sc, version));
        sock_run cr, sr;
        unsigned relayed;
        over_sockets(cc, sc, attacked ? c->mitm_cert : NULL, c->mitm_key, &cr, &sr, &relayed);
        fprintf(stderr, "[%s%s] client %s: %s | server %s: %s (relayed %u)\n", what,
                attacked ? ", attacked" : "", negio_err_name(cr.err), cr.detail,
                negio_err_name(sr.err), sr.detail, relayed);
        if (!attacked) {
            /* the control: the same configuration without the MITM works */
            assert_int_equal(cr.established, 1);
            assert_int_equal(sr.established, 1);
            assert_int_equal(cr.err, 0);
        } else {
            assert_true(relayed >= 1); /* both TLS legs were up: the MITM sat in the middle */
            assert_int_equal(sr.err, NEGIO_ERR_BINDING);
            assert_int_equal(sr.established, 0);
            assert_int_equal(cr.established, 0);
            assert_int_equal(cr.err, NEGIO_ERR_PEER);
            assert_non_null(strstr(cr.detail, "not bound to this TLS channel"));
        }
        negio_conn_del(cr.conn);
        negio_conn_del(sr.conn);
        negio_config_del(cc);
        negio_config_del(sc);
    }
}

/* A man in the middle holding a certificate the client trusts (same CA, right host name), or
 * any certificate in the certificate-free mode, terminates TLS and re-originates it: the GSS
 * authentication is bound to the client's TLS session, the server checks it against its own,
 * and the handshake fails with a channel-binding error. Kerberos and NTLM, TLS 1.3 and 1.2. */
static void man_in_the_middle_is_a_channel_binding_failure(void **state)
{
    (void)state;
    mitm_case("stacked kerberos", PATH_KERBEROS, 1, 13);
    mitm_case("stacked negotiate->kerberos", PATH_NEG_KERBEROS, 1, 13);
    mitm_case("stacked ntlm", PATH_NTLM, 1, 13);
    mitm_case("stacked negotiate->ntlm", PATH_NEG_NTLM, 1, 13);
    mitm_case("certificate-free kerberos", PATH_KERBEROS, 0, 13);
    mitm_case("certificate-free ntlm (allowed)", PATH_NTLM, 0, 13);
    mitm_case("stacked kerberos, TLS 1.2", PATH_KERBEROS, 1, 12);
    mitm_case("certificate-free ntlm, TLS 1.2", PATH_NTLM, 0, 12);
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stacked_kerberos_certificate_free_under_every_split),
        cmocka_unit_test(certificate_free_refuses_ntlm_unless_allowed),
        cmocka_unit_test(stacked_with_certificates_every_path_both_versions),
        cmocka_unit_test(plain_tls_carries_messages_under_every_split),
        cmocka_unit_test(bad_server_certificates_fail_the_handshake),
        cmocka_unit_test(client_certificates_are_required_and_verified),
        cmocka_unit_test(tls_1_1_is_refused),
        cmocka_unit_test(renegotiation_is_refused),
        cmocka_unit_test(eof_without_close_notify_is_truncation),
        cmocka_unit_test(tampered_records_fail_and_deliver_nothing),
        cmocka_unit_test(man_in_the_middle_is_a_channel_binding_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
