/* The one validating path for the peer's context tokens (src/gss/peer_token.c, PROTOCOL.md
 * section 7.5), on hand-built tokens: what each role accepts at each point, what a
 * HANDSHAKE_ERROR's token may reach, and the client's downgrade rule. No GSS, no realm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gss/peer_token.h"

static const uint8_t oid_krb5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_ntlm[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
static const uint8_t oid_spnego[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const uint8_t oid_negoex[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1e};

typedef struct tok {
    uint8_t b[512];
    size_t n;
} tok;

/* Appends one DER element (short-form length) holding CONTENT. */
static void el(tok *t, uint8_t tag, const uint8_t *content, size_t len)
{
    assert_true(len < 128 && t->n + 2 + len <= sizeof(t->b));
    t->b[t->n++] = tag;
    t->b[t->n++] = (uint8_t)len;
    memcpy(t->b + t->n, content, len);
    t->n += len;
}

static tok wrap(uint8_t tag, const tok *inner)
{
    tok t = {.n = 0};
    el(&t, tag, inner->b, inner->n);
    return t;
}

static tok cat(const tok *a, const tok *b)
{
    tok t = *a;
    memcpy(t.b + t.n, b->b, b->n);
    t.n += b->n;
    return t;
}

/* RFC 2743 3.1 framing: 0x60 { OID, INNER }. */
static tok framed(const uint8_t *oid, size_t olen, const tok *inner)
{
    tok o = {.n = 0};
    el(&o, 0x06, oid, olen);
    tok body = cat(&o, inner);
    return wrap(0x60, &body);
}

/* A Kerberos context token with TOK_ID ID (the rest is not this check's business). */
static tok krb5_token(uint16_t id)
{
    tok inner = {.b = {(uint8_t)(id >> 8), (uint8_t)id, 0x6e, 0x01, 0x00}, .n = 5};
    return framed(oid_krb5, sizeof(oid_krb5), &inner);
}

/* An NTLM message of TYPE with its fixed part zeroed (every field empty) but for extended
 * session security in the flags of a NEGOTIATE or CHALLENGE, which negio requires. */
static tok ntlm_msg(uint8_t type)
{
    tok t = {.n = type == 3 ? 72 : 48};
    memcpy(t.b, "NTLMSSP\0", 8);
    t.b[8] = type;
    if (type == 1)
        t.b[14] = 0x08; /* NEGOTIATE_EXTENDED_SESSIONSECURITY, flags at 12 */
    if (type == 2)
        t.b[22] = 0x08; /* the same, flags at 20 */
    return t;
}

/* A CHALLENGE announcing a domain target name of NAME_LEN bytes (0: the gss-ntlmssp crash). */
static tok challenge(uint8_t name_len)
{
    tok t = ntlm_msg(2);
    t.b[12] = t.b[14] = name_len;
    t.b[16] = 48;
    t.b[20] = 0x01;        /* UNICODE */
    t.b[22] = 0x01 | 0x08; /* TARGET_TYPE_DOMAIN, EXTENDED_SESSIONSECURITY */
    memset(t.b + 48, 'N', name_len);
    t.n = 48 + (size_t)name_len;
    return t;
}

/* NegTokenResp: [1] SEQUENCE { negState [0], supportedMech [1], responseToken [2] }. */
static tok negtokenresp(int state, const uint8_t *mech, size_t mlen, const tok *response)
{
    tok seq = {.n = 0};
    if (state >= 0) {
        uint8_t e[] = {0x0a, 0x01, (uint8_t)state};
        el(&seq, 0xa0, e, sizeof(e));
    }
    if (mech != NULL) {
        tok o = {.n = 0};
        el(&o, 0x06, mech, mlen);
        el(&seq, 0xa1, o.b, o.n);
    }
    if (response != NULL) {
        tok os = {.n = 0};
        el(&os, 0x04, response->b, response->n);
        el(&seq, 0xa2, os.b, os.n);
    }
    tok s = wrap(0x30, &seq);
    return wrap(0xa1, &s);
}

/* The client's NegTokenInit: SPNEGO-framed [0] SEQUENCE { mechTypes [0], mechToken [2] }. */
static tok negtokeninit(const uint8_t *first, size_t flen, const tok *opt)
{
    tok oids = {.n = 0};
    el(&oids, 0x06, first, flen);
    el(&oids, 0x06, oid_ntlm, sizeof(oid_ntlm));
    tok list = wrap(0x30, &oids);
    tok seq = {.n = 0};
    el(&seq, 0xa0, list.b, list.n);
    if (opt != NULL) {
        tok os = {.n = 0};
        el(&os, 0x04, opt->b, opt->n);
        el(&seq, 0xa2, os.b, os.n);
    }
    tok s = wrap(0x30, &seq);
    tok a0 = wrap(0xa0, &s);
    return framed(oid_spnego, sizeof(oid_spnego), &a0);
}

static int check(negio__peer_tokens *st, const tok *t)
{
    const char *why = "unset";
    int rc = negio__peer_token_check(st, t->b, t->n, &why);
    if (rc == 0)
        assert_null(why);
    else
        assert_true(why != NULL && why[0] != '\0');
    return rc;
}

static negio__peer_tokens server(void)
{
    return (negio__peer_tokens){.role = NEGIO_ROLE_SERVER};
}

static negio__peer_tokens client(negio_mech want)
{
    return (negio__peer_tokens){.role = NEGIO_ROLE_CLIENT, .want = want, .refuse_fallback = 1};
}

static void server_first_token_names_its_mechanism(void **state)
{
    (void)state;
    negio__peer_tokens st = server();
    tok t = krb5_token(0x0100);
    assert_int_equal(check(&st, &t), 0);
    assert_int_equal(st.want, NEGIO_MECH_KERBEROS);

    st = server();
    t = ntlm_msg(1);
    assert_int_equal(check(&st, &t), 0);
    assert_int_equal(st.want, NEGIO_MECH_NTLM);

    st = server();
    tok opt = ntlm_msg(1);
    t = negtokeninit(oid_ntlm, sizeof(oid_ntlm), &opt);
    assert_int_equal(check(&st, &t), 0);
    assert_int_equal(st.want, NEGIO_MECH_NEGOTIATE);

    /* a first mechanism negio does not speak: its token reaches no mechanism here */
    st = server();
    tok junk = {.b = {1, 2, 3}, .n = 3};
    t = negtokeninit(oid_negoex, sizeof(oid_negoex), &junk);
    assert_int_equal(check(&st, &t), 0);
}

static void server_refuses_what_a_client_cannot_send_first(void **state)
{
    (void)state;
    tok bad[6];
    bad[0] = krb5_token(0x0200); /* an AP-REP from a client */
    bad[1] = ntlm_msg(3);        /* AUTHENTICATE before NEGOTIATE */
    bad[2] = ntlm_msg(2);
    tok opt = ntlm_msg(3);
    bad[3] = negtokeninit(oid_ntlm, sizeof(oid_ntlm), &opt);
    bad[4] = krb5_token(0x0100);
    bad[4].b[1]++; /* the outer length no longer covers the token exactly */
    bad[5] = (tok){.b = {0x60, 0x03, 0x06, 0x01, 0x00}, .n = 5}; /* an unknown OID */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        negio__peer_tokens st = server();
        assert_int_equal(check(&st, &bad[i]), NEGIO_ERR_HANDSHAKE);
    }
}

/* RFC 4178 4.2.1: mechTypes [0] is not optional, and PROTOCOL.md 7.5 asks for at least one
 * mechanism: a NegTokenInit with only an optimistic token, with nothing, or with an empty list is
 * refused. */
static void server_refuses_a_negtokeninit_that_lists_no_mechanism(void **state)
{
    (void)state;
    tok opt = ntlm_msg(1), os = {.n = 0}, none = {.n = 0};
    el(&os, 0x04, opt.b, opt.n);
    tok token_only = wrap(0xa2, &os), empty_list = wrap(0x30, &none);
    tok lists_none = wrap(0xa0, &empty_list);
    const tok *seqs[] = {&token_only, &none, &lists_none};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        tok s = wrap(0x30, seqs[i]);
        tok a0 = wrap(0xa0, &s);
        tok t = framed(oid_spnego, sizeof(oid_spnego), &a0);
        negio__peer_tokens st = server();
        const char *why = NULL;
        assert_int_equal(negio__peer_token_check(&st, t.b, t.n, &why), NEGIO_ERR_HANDSHAKE);
        assert_string_equal(why, "SPNEGO initial token offers no mechanism");
    }
}

static void server_takes_ntlm_messages_in_order(void **state)
{
    (void)state;
    negio__peer_tokens st = server();
    tok neg = ntlm_msg(1), auth = ntlm_msg(3);
    assert_int_equal(check(&st, &neg), 0);
    negio__peer_tokens again = st;
    assert_int_equal(check(&again, &neg), NEGIO_ERR_HANDSHAKE); /* a second NEGOTIATE */
    assert_int_equal(check(&st, &auth), 0);
    assert_int_equal(check(&st, &auth), NEGIO_ERR_HANDSHAKE); /* a third message */
    /* an AUTHENTICATE whose user name field points outside the message */
    st = server();
    assert_int_equal(check(&st, &neg), 0);
    auth.b[36] = 8;
    auth.b[40] = 70;
    assert_int_equal(check(&st, &auth), NEGIO_ERR_HANDSHAKE);
}

static void client_accepts_only_what_its_mechanism_answers(void **state)
{
    (void)state;
    negio__peer_tokens st = client(NEGIO_MECH_KERBEROS);
    tok rep = krb5_token(0x0200), err = krb5_token(0x0300), req = krb5_token(0x0100);
    assert_int_equal(check(&st, &rep), 0);
    st = client(NEGIO_MECH_KERBEROS);
    assert_int_equal(check(&st, &err), 0);
    st = client(NEGIO_MECH_KERBEROS);
    assert_int_equal(check(&st, &req), NEGIO_ERR_HANDSHAKE); /* reflected */
    tok chal = challenge(8);
    assert_int_equal(check(&st, &chal), NEGIO_ERR_HANDSHAKE);

    st = client(NEGIO_MECH_NTLM);
    assert_int_equal(check(&st, &chal), 0);
    assert_int_equal(check(&st, &chal), NEGIO_ERR_HANDSHAKE); /* one CHALLENGE only */
    st = client(NEGIO_MECH_NTLM);
    tok neg = ntlm_msg(1);
    assert_int_equal(check(&st, &neg), NEGIO_ERR_HANDSHAKE);
}

static void client_refuses_the_challenge_that_crashes_gss_ntlmssp(void **state)
{
    (void)state;
    tok chal = challenge(0);
    negio__peer_tokens st = client(NEGIO_MECH_NTLM);
    assert_int_equal(check(&st, &chal), NEGIO_ERR_HANDSHAKE);
    tok resp = negtokenresp(1, oid_ntlm, sizeof(oid_ntlm), &chal);
    st = client(NEGIO_MECH_NEGOTIATE);
    st.inner = NEGIO_MECH_NTLM;
    assert_int_equal(check(&st, &resp), NEGIO_ERR_HANDSHAKE);
    /* the same message with a name passes */
    chal = challenge(8);
    resp = negtokenresp(1, oid_ntlm, sizeof(oid_ntlm), &chal);
    st = client(NEGIO_MECH_NEGOTIATE);
    st.inner = NEGIO_MECH_NTLM;
    assert_int_equal(check(&st, &resp), 0);
    assert_int_equal(st.inner, NEGIO_MECH_NTLM);
}

static void spnego_response_is_read_by_the_mechanism_it_names(void **state)
{
    (void)state;
    /* a client on Kerberos that is handed a CHALLENGE as the Kerberos reply */
    tok chal = challenge(8);
    tok resp = negtokenresp(0, oid_krb5, sizeof(oid_krb5), &chal);
    negio__peer_tokens st = client(NEGIO_MECH_NEGOTIATE);
    st.inner = NEGIO_MECH_KERBEROS;
    assert_int_equal(check(&st, &resp), NEGIO_ERR_HANDSHAKE);
    /* a mechanism negio never offers, an unknown negState, a client naming a mechanism */
    tok rep = krb5_token(0x0200);
    resp = negtokenresp(0, oid_negoex, sizeof(oid_negoex), &rep);
    assert_int_equal(check(&st, &resp), NEGIO_ERR_HANDSHAKE);
    resp = negtokenresp(4, NULL, 0, &rep);
    assert_int_equal(check(&st, &resp), NEGIO_ERR_HANDSHAKE);
    negio__peer_tokens sv = server();
    tok opt = ntlm_msg(1);
    tok init = negtokeninit(oid_ntlm, sizeof(oid_ntlm), &opt);
    assert_int_equal(check(&sv, &init), 0);
    tok auth = ntlm_msg(3);
    resp = negtokenresp(-1, oid_ntlm, sizeof(oid_ntlm), &auth);
    assert_int_equal(check(&sv, &resp), NEGIO_ERR_HANDSHAKE);
    resp = negtokenresp(-1, NULL, 0, &auth);
    assert_int_equal(check(&sv, &resp), 0);
}

/* gss-ntlmssp leaks on a target info that repeats a pair and on a context without extended
 * session security (src/gss/ntlm_check.c): neither reaches it, from either side. */
static void ntlm_messages_that_make_gss_ntlmssp_leak_are_refused(void **state)
{
    (void)state;
    negio__peer_tokens st = server();
    tok neg = ntlm_msg(1);
    neg.b[14] = 0;
    assert_int_equal(check(&st, &neg), NEGIO_ERR_HANDSHAKE);
    tok chal = challenge(8);
    chal.b[22] = 0x01; /* TARGET_TYPE_DOMAIN without EXTENDED_SESSIONSECURITY */
    st = client(NEGIO_MECH_NTLM);
    assert_int_equal(check(&st, &chal), NEGIO_ERR_HANDSHAKE);
    /* target info: a name, the same name again, the end */
    static const uint8_t info[] = {2, 0, 2, 0, 'N', 0, 2, 0, 2, 0, 'N', 0, 0, 0, 0, 0};
    static const uint8_t once[] = {2, 0, 2, 0, 'N', 0, 0, 0, 0, 0};
    static const uint8_t no_end[] = {2, 0, 2, 0, 'N', 0};
    static const uint8_t past[] = {2, 0, 9, 0, 'N', 0};
    const struct {
        const uint8_t *p;
        size_t n;
        int ok;
    } cases[] = {{info, sizeof(info), 0},
                 {once, sizeof(once), 1},
                 {no_end, sizeof(no_end), 0},
                 {past, sizeof(past), 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        chal = challenge(8);
        chal.b[40] = chal.b[42] = (uint8_t)cases[i].n;
        chal.b[44] = (uint8_t)chal.n;
        memcpy(chal.b + chal.n, cases[i].p, cases[i].n);
        chal.n += cases[i].n;
        st = client(NEGIO_MECH_NTLM);
        assert_int_equal(check(&st, &chal), cases[i].ok ? 0 : NEGIO_ERR_HANDSHAKE);
    }
}

/* The client's own NegTokenInit decides whether NTLM is a downgrade. */
static void client_that_offered_kerberos_refuses_ntlm_unless_allowed(void **state)
{
    (void)state;
    tok apreq = krb5_token(0x0100);
    tok mine = negtokeninit(oid_krb5, sizeof(oid_krb5), &apreq);
    tok chal = challenge(8);
    tok resp = negtokenresp(1, oid_ntlm, sizeof(oid_ntlm), &chal);
    negio__peer_tokens st = client(NEGIO_MECH_NEGOTIATE);
    negio__peer_tokens_own_first(&st, mine.b, mine.n);
    assert_true(st.offered_kerberos);
    assert_int_equal(st.inner, NEGIO_MECH_KERBEROS);
    assert_int_equal(check(&st, &resp), NEGIO_ERR_POLICY);
    /* also without a token in the response (the server asks for NTLM's first message) */
    resp = negtokenresp(1, oid_ntlm, sizeof(oid_ntlm), NULL);
    assert_int_equal(check(&st, &resp), NEGIO_ERR_POLICY);
    /* allowed to fall back */
    st = client(NEGIO_MECH_NEGOTIATE);
    st.refuse_fallback = 0;
    negio__peer_tokens_own_first(&st, mine.b, mine.n);
    resp = negtokenresp(1, oid_ntlm, sizeof(oid_ntlm), &chal);
    assert_int_equal(check(&st, &resp), 0);
    /* a client that offered Kerberos without a token (no ticket) did not offer Kerberos */
    tok bare = negtokeninit(oid_krb5, sizeof(oid_krb5), NULL);
    st = client(NEGIO_MECH_NEGOTIATE);
    negio__peer_tokens_own_first(&st, bare.b, bare.n);
    assert_false(st.offered_kerberos);
    assert_int_equal(check(&st, &resp), 0);
}

/* A HANDSHAKE_ERROR's token reaches GSS only as a Kerberos error on a Kerberos conversation. */
static void error_tokens_reach_gss_only_as_kerberos_errors(void **state)
{
    (void)state;
    tok err = krb5_token(0x0300), rep = krb5_token(0x0200), chal = challenge(0),
        good_chal = challenge(8);
    negio__peer_tokens k = client(NEGIO_MECH_KERBEROS);
    assert_true(negio__peer_error_token_ok(&k, err.b, err.n));
    assert_false(negio__peer_error_token_ok(&k, rep.b, rep.n));
    assert_false(negio__peer_error_token_ok(&k, chal.b, chal.n));
    /* NTLM has no error tokens: not even a well-formed CHALLENGE */
    negio__peer_tokens n = client(NEGIO_MECH_NTLM);
    assert_false(negio__peer_error_token_ok(&n, good_chal.b, good_chal.n));
    assert_false(negio__peer_error_token_ok(&n, chal.b, chal.n));
    assert_int_equal(n.seen, 0); /* the check changed nothing */
    /* SPNEGO: a KRB-ERROR response while on Kerberos passes; NTLM inside never does */
    negio__peer_tokens s = client(NEGIO_MECH_NEGOTIATE);
    s.inner = NEGIO_MECH_KERBEROS;
    tok resp = negtokenresp(2, oid_krb5, sizeof(oid_krb5), &err);
    assert_true(negio__peer_error_token_ok(&s, resp.b, resp.n));
    resp = negtokenresp(2, oid_ntlm, sizeof(oid_ntlm), &chal);
    assert_false(negio__peer_error_token_ok(&s, resp.b, resp.n));
    s.inner = NEGIO_MECH_NTLM;
    s.refuse_fallback = 0;
    resp = negtokenresp(1, NULL, 0, &good_chal);
    assert_false(negio__peer_error_token_ok(&s, resp.b, resp.n));
    /* a server never interprets one */
    negio__peer_tokens sv = server();
    assert_false(negio__peer_error_token_ok(&sv, err.b, err.n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_first_token_names_its_mechanism),
        cmocka_unit_test(server_refuses_what_a_client_cannot_send_first),
        cmocka_unit_test(server_refuses_a_negtokeninit_that_lists_no_mechanism),
        cmocka_unit_test(server_takes_ntlm_messages_in_order),
        cmocka_unit_test(client_accepts_only_what_its_mechanism_answers),
        cmocka_unit_test(client_refuses_the_challenge_that_crashes_gss_ntlmssp),
        cmocka_unit_test(spnego_response_is_read_by_the_mechanism_it_names),
        cmocka_unit_test(ntlm_messages_that_make_gss_ntlmssp_leak_are_refused),
        cmocka_unit_test(client_that_offered_kerberos_refuses_ntlm_unless_allowed),
        cmocka_unit_test(error_tokens_reach_gss_only_as_kerberos_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
