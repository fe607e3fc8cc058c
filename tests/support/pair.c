#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "support/bytes.h"
#include "support/certs.h"
#include "support/clock.h"
#include "support/support.h"

uint32_t test_rand(unsigned *seed)
{
    /* xorshift32: deterministic across platforms */
    uint32_t x = *seed ? *seed : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x;
    return x;
}

test_path test_path_ids[PATH_COUNT] = {PATH_KERBEROS, PATH_NEG_KERBEROS, PATH_NEG_NTLM, PATH_NTLM};

const char *test_path_name(test_path p)
{
    static const char *names[] = {"kerberos", "negotiate->kerberos", "negotiate->ntlm", "ntlm"};
    return p < PATH_COUNT ? names[p] : "?";
}

negio_mech test_path_mech(test_path p)
{
    return (p == PATH_KERBEROS || p == PATH_NEG_KERBEROS) ? NEGIO_MECH_KERBEROS : NEGIO_MECH_NTLM;
}

static void must(int rc, const char *what)
{
    if (rc != NEGIO_OK) {
        fprintf(stderr, "%s: %s\n", what, negio_strerror(rc));
        abort();
    }
}

test_transport test_transport_get(void)
{
    const char *t = getenv("NEGIO_TEST_TRANSPORT");
    if (t == NULL || t[0] == '\0' || strcmp(t, "plain") == 0)
        return TRANSPORT_PLAIN;
    if (strcmp(t, "tls") == 0)
        return TRANSPORT_TLS;
    if (strcmp(t, "tls-negotiate") == 0)
        return TRANSPORT_TLS_NEGOTIATE;
    if (strcmp(t, "tls-negotiate-certfree") == 0)
        return TRANSPORT_TLS_CERTFREE;
    fprintf(stderr, "NEGIO_TEST_TRANSPORT=%s: unknown\n", t);
    abort();
}

const char *test_transport_name(test_transport t)
{
    static const char *names[] = {"plain", "tls", "tls-negotiate", "tls-negotiate-certfree"};
    return names[t];
}

int test_path_count(void)
{
    return test_transport_get() == TRANSPORT_TLS ? 1 : PATH_COUNT;
}

static test_certs certs;
static int certs_made;

static void remove_certs(void)
{
    test_certs_remove(&certs);
}

const struct test_certs *test_certs_get(void)
{
    if (!certs_made) {
        if (test_certs_make(&certs) != 0)
            abort();
        certs_made = 1;
        atexit(remove_certs);
    }
    return &certs;
}

/* Puts CFG on the transport NEGIO_TEST_TRANSPORT names. */
static void apply_transport(negio_config *cfg, negio_role role)
{
    test_transport t = test_transport_get();
    if (t == TRANSPORT_PLAIN)
        return;
    const test_certs *c = test_certs_get();
    must(negio_config_set_transport(cfg, t == TRANSPORT_TLS ? NEGIO_TRANSPORT_TLS
                                                            : NEGIO_TRANSPORT_TLS_NEGOTIATE),
         "transport");
    if (t != TRANSPORT_TLS) {
        must(negio_config_set_default_level(cfg, NEGIO_LEVEL_SEAL), "default level");
        must(negio_config_set_min_level(cfg, NEGIO_LEVEL_SIGN), "min level");
    }
    if (t == TRANSPORT_TLS_CERTFREE) {
        /* the suites run NTLM paths too: allowed here, refused by default (test_tls) */
        must(negio_config_set_tls_allow_ntlm(cfg, 1), "allow ntlm");
        return;
    }
    if (role == NEGIO_ROLE_SERVER)
        must(negio_config_set_tls_cert(cfg, c->server_cert, c->server_key), "cert");
    else
        must(negio_config_set_tls_ca(cfg, c->ca_cert), "ca");
}

negio_config *test_client_config(test_path p)
{
    const test_realm *r = test_realm_get();
    negio_config *cfg;
    must(negio_config_new(&cfg, NEGIO_ROLE_CLIENT), "config");
    must(negio_config_set_service(cfg, "negio@localhost"), "service");
    switch (p) {
    case PATH_KERBEROS:
        must(negio_config_set_mech(cfg, NEGIO_MECH_KERBEROS), "mech");
        must(negio_config_set_ccache(cfg, r->ccache), "ccache");
        break;
    case PATH_NEG_KERBEROS:
        must(negio_config_set_mech(cfg, NEGIO_MECH_NEGOTIATE), "mech");
        must(negio_config_set_ccache(cfg, r->ccache), "ccache");
        break;
    case PATH_NEG_NTLM:
        /* no Kerberos ticket: SPNEGO falls back to NTLM from the NTLM account file */
        must(negio_config_set_mech(cfg, NEGIO_MECH_NEGOTIATE), "mech");
        must(negio_config_set_ccache(cfg, r->empty_ccache), "ccache");
        must(negio_config_set_ntlm_file(cfg, r->ntlm_file), "ntlm file");
        break;
    default:
        must(negio_config_set_mech(cfg, NEGIO_MECH_NTLM), "mech");
        break;
    }
    apply_transport(cfg, NEGIO_ROLE_CLIENT);
    return cfg;
}

negio_config *test_server_config(test_path p)
{
    const test_realm *r = test_realm_get();
    (void)p;
    negio_config *cfg;
    must(negio_config_new(&cfg, NEGIO_ROLE_SERVER), "config");
    must(negio_config_set_service(cfg, "negio@localhost"), "service");
    must(negio_config_set_keytab(cfg, r->keytab), "keytab");
    apply_transport(cfg, NEGIO_ROLE_SERVER);
    return cfg;
}

negio_config *test_password_client(negio_mech mech, const char *user, const char *password)
{
    negio_config *cfg = test_client_config(PATH_KERBEROS);
    must(negio_config_set_mech(cfg, mech), "mech");
    must(negio_config_set_password(cfg, user, password), "password");
    return cfg;
}

negio_conn *test_bare_server(const negio_limits *limits)
{
    negio_config *cfg;
    must(negio_config_new(&cfg, NEGIO_ROLE_SERVER), "config");
    if (limits != NULL)
        must(negio_config_set_limits(cfg, limits), "limits");
    negio_conn *c;
    must(negio_conn_new(&c, cfg), "connector");
    negio_config_del(cfg);
    return c;
}

negio_conn *test_deferred_client(void)
{
    negio_config *cfg;
    must(negio_config_new(&cfg, NEGIO_ROLE_CLIENT), "config");
    must(negio_config_set_service(cfg, "negio@localhost"), "service");
    must(negio_config_set_deferred_steps(cfg, 1), "deferred steps");
    negio_conn *c;
    must(negio_conn_new(&c, cfg), "connector");
    negio_config_del(cfg);
    return c;
}

void test_pair_report(const test_pair *p, const char *what)
{
    fprintf(stderr, "[%s] client %s: %s | server %s: %s\n", what, negio_err_name(p->client.err),
            negio_conn_error_detail(p->client.conn), negio_err_name(p->server.err),
            negio_conn_error_detail(p->server.conn));
}

void test_pair_run_configs(test_pair *p, negio_config *client, negio_config *server,
                           const char *what)
{
    test_pair_init(p, client, server, SPLIT_WHOLE, 1);
    negio_config_del(client);
    negio_config_del(server);
    test_pair_run(p);
    test_pair_report(p, what);
}

/* The seconds MIT's GSS-API gives CCACHE's Kerberos credentials: 0 once the clock has reached
 * their end time. */
static OM_uint32 ticket_lifetime(const char *ccache)
{
    OM_uint32 min, lifetime = 0;
    gss_key_value_element_desc el = {"ccache", ccache};
    gss_key_value_set_desc store = {1, &el};
    gss_OID_set_desc mechs = {1, (gss_OID)gss_mech_krb5};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                          GSS_C_INITIATE, &store, &cred, NULL, &lifetime);
    gss_release_cred(&min, &cred);
    return GSS_ERROR(maj) ? 0 : lifetime;
}

int test_wait_ticket_expired(const char *ccache, int ms)
{
    /* MIT compares whole seconds, strictly: a ticket is expired once the clock has passed its
     * end time, so after the second at which GSS-API gives it no time left, the next one */
    int64_t until = test_now_ms() + ms;
    TEST_POLL_EVERY(ticket_lifetime(ccache) == 0, ms, 100);
    if (ticket_lifetime(ccache) != 0)
        return 0;
    time_t at_end = time(NULL);
    TEST_POLL_EVERY(time(NULL) > at_end, test_ms_left(until), 10);
    return time(NULL) > at_end;
}

void test_pair_init(test_pair *p, const negio_config *client, const negio_config *server,
                    test_split split, unsigned seed)
{
    memset(p, 0, sizeof(*p));
    p->split = split;
    p->seed = seed ? seed : 1;
    must(negio_conn_new(&p->client.conn, client), "client conn");
    must(negio_conn_new(&p->server.conn, server), "server conn");
}

void test_side_free(test_side *s)
{
    for (int i = 0; i < s->nevents; i++)
        free(s->events[i].data);
    negio_conn_del(s->conn);
    memset(s, 0, sizeof(*s));
}

void test_pair_free(test_pair *p)
{
    test_side_free(&p->client);
    test_side_free(&p->server);
}

void test_side_drain(test_side *s)
{
    for (;;) {
        if (s->deferred && (negio_conn_want(s->conn) & NEGIO_WANT_STEP))
            (void)negio_conn_step(s->conn);
        negio_event ev;
        int rc = negio_conn_next_event(s->conn, &ev);
        if (rc < 0) {
            s->err = rc;
            return;
        }
        if (rc == 0) {
            if (s->deferred && (negio_conn_want(s->conn) & NEGIO_WANT_STEP))
                continue;
            return;
        }
        if (s->nevents == TEST_MAX_EVENTS)
            abort();
        test_event *e = &s->events[s->nevents++];
        e->type = ev.type;
        e->level = ev.level;
        e->len = ev.len;
        e->status = ev.status;
        e->data = malloc(ev.len + 1);
        if (ev.len)
            memcpy(e->data, ev.data, ev.len);
    }
}

size_t test_pair_move(test_pair *p, test_side *from, test_side *to)
{
    size_t avail;
    const uint8_t *out = negio_conn_send_buf(from->conn, &avail);
    if (avail == 0)
        return 0;
    size_t n = avail;
    if (p->split == SPLIT_BYTE)
        n = 1;
    else if (p->split == SPLIT_RANDOM)
        n = 1 + test_rand(&p->seed) % (avail < 64 ? avail : 64 + avail / 4);
    if (n > avail)
        n = avail;
    if (negio_conn_feed(to->conn, out, n) != NEGIO_OK) {
        negio_conn_send_done(from->conn, avail); /* the receiver is dead; drop */
        return avail;
    }
    negio_conn_send_done(from->conn, n);
    return n;
}

void test_pair_run(test_pair *p)
{
    test_side_drain(&p->client);
    test_side_drain(&p->server);
    for (int guard = 0; guard < 100000000; guard++) {
        size_t a = test_pair_move(p, &p->client, &p->server);
        if (a)
            test_side_drain(&p->server);
        size_t b = test_pair_move(p, &p->server, &p->client);
        if (b)
            test_side_drain(&p->client);
        if (a == 0 && b == 0)
            return;
    }
    abort();
}

/* Hands every whole frame of FROM's pending output to HOOK, then to TO. Returns the bytes taken
 * from FROM. */
static size_t move_frames(test_side *from, test_side *to, int dir, int *count, test_frame_hook hook,
                          void *user)
{
    size_t avail;
    const uint8_t *out = negio_conn_send_buf(from->conn, &avail);
    size_t at = 0;
    while (at < avail) {
        size_t n = avail - at;
        if (n >= 8) {
            size_t body = test_get_be32(out + at + 4);
            if (body <= n - 8)
                n = 8 + body;
        }
        test_frame f = {dir, (*count)++, malloc(n + 1), n};
        if (f.data == NULL)
            abort();
        memcpy(f.data, out + at, n);
        hook(&f, user);
        if (f.len > 0)
            (void)negio_conn_feed(to->conn, f.data, f.len);
        free(f.data);
        at += n;
    }
    negio_conn_send_done(from->conn, avail);
    return avail;
}

void test_pair_run_frames(test_pair *p, test_frame_hook hook, void *user)
{
    int count[2] = {0, 0};
    test_side_drain(&p->client);
    test_side_drain(&p->server);
    for (int guard = 0; guard < 100000; guard++) {
        size_t a = move_frames(&p->client, &p->server, 0, &count[0], hook, user);
        if (a)
            test_side_drain(&p->server);
        size_t b = move_frames(&p->server, &p->client, 1, &count[1], hook, user);
        if (b)
            test_side_drain(&p->client);
        if (a == 0 && b == 0)
            return;
    }
    abort();
}

int test_side_count(const test_side *s, negio_event_type type)
{
    int n = 0;
    for (int i = 0; i < s->nevents; i++)
        n += s->events[i].type == type;
    return n;
}

const test_event *test_side_message(const test_side *s, int n)
{
    for (int i = 0; i < s->nevents; i++) {
        if (s->events[i].type == NEGIO_EV_MESSAGE && n-- == 0)
            return &s->events[i];
    }
    return NULL;
}

int test_pair_establish(test_pair *p)
{
    test_pair_run(p);
    return test_side_count(&p->client, NEGIO_EV_ESTABLISHED) == 1 &&
           test_side_count(&p->server, NEGIO_EV_ESTABLISHED) == 1;
}

uint8_t *test_memdup(const void *p, size_t n)
{
    uint8_t *copy = malloc(n + 1);
    if (copy == NULL)
        abort();
    if (n > 0)
        memcpy(copy, p, n);
    return copy;
}

uint8_t *test_take_output(negio_conn *c, size_t *len)
{
    const uint8_t *out = negio_conn_send_buf(c, len);
    uint8_t *copy = malloc(*len + 1);
    if (*len)
        memcpy(copy, out, *len);
    negio_conn_send_done(c, *len);
    return copy;
}
