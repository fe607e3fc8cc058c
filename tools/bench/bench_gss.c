/*
 * negio bench: the in-process limits. GSS contexts are made the way negio makes them (the same
 * mechanism OIDs, request flags and credentials, src/gss/cred.c and context.c) but driven directly,
 * with no framing, no copies and no I/O: what is left is the mechanism's own cost.
 */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static gss_OID_desc oid_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
static gss_OID_desc oid_krb5 = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
static gss_OID_desc oid_ntlm = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

#define SERVICE "negio@localhost"
/* negio's request: src/gss/context.c, negio__gss_new() with mutual authentication (the default) */
#define REQ_FLAGS                                                                                  \
    (GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG |              \
     GSS_C_CONF_FLAG)

struct bench_gss_pair {
    gss_OID mech;
    gss_cred_id_t icred, acred;
    gss_name_t target;
    gss_ctx_id_t ictx, actx;
};

static void gss_err(char *err, size_t cap, const char *call, OM_uint32 maj, OM_uint32 min)
{
    char text[512] = "";
    size_t used = 0;
    OM_uint32 codes[2] = {maj, min};
    int types[2] = {GSS_C_GSS_CODE, GSS_C_MECH_CODE};
    for (int i = 0; i < 2; i++) {
        OM_uint32 more = 0, m2;
        do {
            gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
            if (GSS_ERROR(gss_display_status(&m2, codes[i], types[i], GSS_C_NO_OID, &more, &b)))
                break;
            int n = snprintf(text + used, sizeof(text) - used, "%s%.*s", used ? "; " : "",
                             (int)b.length, (const char *)b.value);
            if (n > 0 && (size_t)n < sizeof(text) - used)
                used += (size_t)n;
            gss_release_buffer(&m2, &b);
        } while (more != 0);
    }
    snprintf(err, cap, "%s: %s", call, text);
}

/* What negio's server acquires (acquire_server): SPNEGO, Kerberos and NTLM for the service, with
 * the mechanisms SPNEGO may negotiate set to Kerberos and NTLM. */
static int acquire_acceptor(gss_cred_id_t *out, char *err, size_t cap)
{
    OM_uint32 maj, min;
    gss_name_t name;
    gss_buffer_desc nb = {strlen(SERVICE), (void *)SERVICE};
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &name);
    if (GSS_ERROR(maj))
        return gss_err(err, cap, "gss_import_name", maj, min), -1;
    gss_OID_desc elems[3] = {oid_spnego, oid_krb5, oid_ntlm};
    gss_OID_set_desc mechs = {3, elems};
    maj = gss_acquire_cred(&min, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, out, NULL, NULL);
    gss_release_name(&min, &name);
    if (GSS_ERROR(maj))
        return gss_err(err, cap, "gss_acquire_cred (acceptor)", maj, min), -1;
    gss_OID_set_desc neg = {2, elems + 1};
    maj = gss_set_neg_mechs(&min, *out, &neg);
    if (GSS_ERROR(maj))
        return gss_err(err, cap, "gss_set_neg_mechs", maj, min), -1;
    return 0;
}

/* What negio's client acquires (acquire_client) for PATH: the mechanism's default credentials;
 * for negotiate-ntlm a cred store naming a ticket cache that does not exist and the NTLM file. */
static int acquire_initiator(const char *path, gss_OID *mech, gss_cred_id_t *out, char *err,
                             size_t cap)
{
    OM_uint32 maj, min;
    static char empty_cc[600];
    gss_key_value_element_desc el[2];
    gss_key_value_set_desc store = {0, el};
    if (strcmp(path, "kerberos") == 0) {
        *mech = &oid_krb5;
    } else if (strcmp(path, "ntlm") == 0) {
        *mech = &oid_ntlm;
    } else if (strcmp(path, "negotiate-ntlm") == 0) {
        const char *dir = getenv("NEGIO_REALM_DIR"), *ntlm = getenv("NTLM_USER_FILE");
        if (dir == NULL || ntlm == NULL)
            return snprintf(err, cap, "NEGIO_REALM_DIR and NTLM_USER_FILE must be set"), -1;
        snprintf(empty_cc, sizeof(empty_cc), "FILE:%s/no-such-cc", dir);
        el[store.count++] = (gss_key_value_element_desc){"ccache", empty_cc};
        el[store.count++] = (gss_key_value_element_desc){"ntlmssp_keyfile", ntlm};
        *mech = &oid_spnego;
    } else {
        return snprintf(err, cap, "unknown path %s", path), -1;
    }
    gss_OID_desc one = **mech;
    gss_OID_set_desc mechs = {1, &one};
    maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                store.count ? &store : GSS_C_NO_CRED_STORE, out, NULL, NULL);
    if (GSS_ERROR(maj))
        return gss_err(err, cap, "gss_acquire_cred_from (initiator)", maj, min), -1;
    if (*mech == &oid_spnego) {
        gss_OID_desc negs[2] = {oid_krb5, oid_ntlm};
        gss_OID_set_desc neg = {2, negs};
        maj = gss_set_neg_mechs(&min, *out, &neg);
        if (GSS_ERROR(maj))
            return gss_err(err, cap, "gss_set_neg_mechs", maj, min), -1;
    }
    return 0;
}

static int import_target(gss_name_t *out, char *err, size_t cap)
{
    OM_uint32 maj, min;
    gss_buffer_desc nb = {strlen(SERVICE), (void *)SERVICE};
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, out);
    if (GSS_ERROR(maj))
        return gss_err(err, cap, "gss_import_name", maj, min), -1;
    return 0;
}

/* The context loop of RFC 2743 section 2.2 between an initiator and an acceptor in memory. */
static int establish(gss_OID mech, gss_cred_id_t icred, gss_cred_id_t acred, gss_name_t target,
                     gss_ctx_id_t *ictx, gss_ctx_id_t *actx, char *err, size_t cap)
{
    OM_uint32 maj, min;
    gss_buffer_desc a2i = GSS_C_EMPTY_BUFFER, i2a = GSS_C_EMPTY_BUFFER;
    int ic = 0, ac = 0;
    for (int round = 0; round < 16 && !(ic && ac); round++) {
        if (!ic) {
            maj = gss_init_sec_context(&min, icred, ictx, target, mech, REQ_FLAGS, 0,
                                       GSS_C_NO_CHANNEL_BINDINGS, round ? &a2i : GSS_C_NO_BUFFER,
                                       NULL, &i2a, NULL, NULL);
            gss_release_buffer(&min, &a2i);
            if (GSS_ERROR(maj)) {
                gss_release_buffer(&min, &i2a);
                return gss_err(err, cap, "gss_init_sec_context", maj, min), -1;
            }
            ic = maj == GSS_S_COMPLETE;
        } else if (a2i.length > 0) {
            gss_release_buffer(&min, &a2i);
            return snprintf(err, cap, "acceptor token after the initiator completed"), -1;
        }
        if (i2a.length > 0) {
            if (ac) {
                gss_release_buffer(&min, &i2a);
                return snprintf(err, cap, "initiator token after the acceptor completed"), -1;
            }
            maj = gss_accept_sec_context(&min, actx, acred, &i2a, GSS_C_NO_CHANNEL_BINDINGS, NULL,
                                         NULL, &a2i, NULL, NULL, NULL);
            gss_release_buffer(&min, &i2a);
            if (GSS_ERROR(maj)) {
                gss_release_buffer(&min, &a2i);
                return gss_err(err, cap, "gss_accept_sec_context", maj, min), -1;
            }
            ac = maj == GSS_S_COMPLETE;
        }
    }
    gss_release_buffer(&min, &a2i);
    if (!(ic && ac))
        return snprintf(err, cap, "the handshake did not complete"), -1;
    return 0;
}

void bench_gss_pair_del(bench_gss_pair *p)
{
    OM_uint32 min;
    if (p == NULL)
        return;
    gss_delete_sec_context(&min, &p->ictx, GSS_C_NO_BUFFER);
    gss_delete_sec_context(&min, &p->actx, GSS_C_NO_BUFFER);
    gss_release_cred(&min, &p->icred);
    gss_release_cred(&min, &p->acred);
    gss_release_name(&min, &p->target);
    free(p);
}

bench_gss_pair *bench_gss_pair_new(const char *mech, char *err, size_t cap)
{
    bench_gss_pair *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return snprintf(err, cap, "out of memory"), NULL;
    p->icred = p->acred = GSS_C_NO_CREDENTIAL;
    p->ictx = p->actx = GSS_C_NO_CONTEXT;
    p->target = GSS_C_NO_NAME;
    if (acquire_initiator(mech, &p->mech, &p->icred, err, cap) < 0 ||
        acquire_acceptor(&p->acred, err, cap) < 0 || import_target(&p->target, err, cap) < 0 ||
        establish(p->mech, p->icred, p->acred, p->target, &p->ictx, &p->actx, err, cap) < 0) {
        bench_gss_pair_del(p);
        return NULL;
    }
    return p;
}

/* GSS_C_INQ_SSPI_SESSION_KEY: the key, then the OID 1.2.840.113554.1.2.2.4.<enctype>; its
 * length in bits into *BITS. -1 if the mechanism cannot say, -2 if it gave no enctype. */
static long session_key(bench_gss_pair *p, size_t *bits)
{
    OM_uint32 maj, min;
    gss_buffer_set_t set = GSS_C_NO_BUFFER_SET;
    maj = gss_inquire_sec_context_by_oid(&min, p->ictx, GSS_C_INQ_SSPI_SESSION_KEY, &set);
    if (GSS_ERROR(maj) || set == GSS_C_NO_BUFFER_SET || set->count < 1) {
        gss_release_buffer_set(&min, &set);
        return -1;
    }
    *bits = set->elements[0].length * 8;
    long enctype = -2;
    if (set->count >= 2 && set->elements[1].length == 11)
        enctype = ((const unsigned char *)set->elements[1].value)[10];
    gss_release_buffer_set(&min, &set);
    return enctype;
}

int bench_gss_pair_enctype(bench_gss_pair *p)
{
    size_t bits = 0;
    long e = session_key(p, &bits);
    return e >= 0 ? (int)e : -1;
}

void bench_gss_pair_key(bench_gss_pair *p, char *out, size_t cap)
{
    size_t bits = 0;
    snprintf(out, cap, "unknown");
    long enctype = session_key(p, &bits);
    if (enctype == -1)
        return;
    static const struct {
        long type;
        const char *name;
    } names[] = {{17, "aes128-cts-hmac-sha1-96"},
                 {18, "aes256-cts-hmac-sha1-96"},
                 {19, "aes128-cts-hmac-sha256-128"},
                 {20, "aes256-cts-hmac-sha384-192"},
                 {23, "rc4-hmac"}};
    const char *name = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].type == enctype)
            name = names[i].name;
    if (name != NULL)
        snprintf(out, cap, "%s (enctype %ld), %zu-bit session key", name, enctype, bits);
    else if (enctype >= 0)
        snprintf(out, cap, "enctype %ld, %zu-bit session key", enctype, bits);
    else
        snprintf(out, cap, "%zu-bit session key", bits);
}

int bench_gss_loop(bench_gss_pair *p, negio_level level, size_t size, double seconds,
                   bench_gss_result *r, char *err, size_t cap)
{
    OM_uint32 maj, min;
    uint8_t *msg = bench_payload(size ? size : 1);
    if (msg == NULL)
        return snprintf(err, cap, "out of memory"), -1;
    memset(r, 0, sizeof(*r));
    int64_t c0 = bench_thread_cpu_ns(), w0 = bench_now_ns(), limit = (int64_t)(seconds * 1e9);
    long n = 0;
    int rc = 0;
    do {
        for (int k = 0; k < 8; k++, n++) {
            gss_buffer_desc in = {size, msg}, tok = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
            int conf = 0;
            if (level == NEGIO_LEVEL_SEAL) {
                maj = gss_wrap(&min, p->ictx, 1, GSS_C_QOP_DEFAULT, &in, &conf, &tok);
                if (maj != GSS_S_COMPLETE || conf != 1) {
                    gss_err(err, cap, "gss_wrap", maj, min);
                    rc = -1;
                }
                if (rc == 0) {
                    maj = gss_unwrap(&min, p->actx, &tok, &out, &conf, NULL);
                    if (maj != GSS_S_COMPLETE || out.length != size) {
                        gss_err(err, cap, "gss_unwrap", maj, min);
                        rc = -1;
                    }
                }
            } else {
                maj = gss_get_mic(&min, p->ictx, GSS_C_QOP_DEFAULT, &in, &tok);
                if (maj != GSS_S_COMPLETE) {
                    gss_err(err, cap, "gss_get_mic", maj, min);
                    rc = -1;
                }
                if (rc == 0) {
                    maj = gss_verify_mic(&min, p->actx, &in, &tok, NULL);
                    if (maj != GSS_S_COMPLETE) {
                        gss_err(err, cap, "gss_verify_mic", maj, min);
                        rc = -1;
                    }
                }
            }
            gss_release_buffer(&min, &tok);
            gss_release_buffer(&min, &out);
            if (rc < 0)
                break;
        }
    } while (rc == 0 && bench_thread_cpu_ns() - c0 < limit);
    r->cpu_s = (double)(bench_thread_cpu_ns() - c0) / 1e9;
    r->wall_s = (double)(bench_now_ns() - w0) / 1e9;
    r->msgs = (double)n;
    r->bytes = (double)n * (double)size;
    bench_free_payload(msg);
    return rc;
}

/* ---- handshakes ------------------------------------------------------------------------------ */

/* Two negio connectors in memory: what the library costs without sockets or threads. */
static int negio_pair_handshake(const negio_config *cc, const negio_config *sc, char *err,
                                size_t cap)
{
    negio_conn *c = NULL, *s = NULL;
    int rc = negio_conn_new(&c, cc);
    if (rc == 0)
        rc = negio_conn_new(&s, sc);
    int established = 0;
    for (int round = 0; rc == 0 && round < 32 && !established; round++) {
        negio_event ev;
        int moved = 0;
        negio_conn *sides[2] = {c, s};
        for (int i = 0; i < 2 && rc == 0; i++) {
            int got;
            while ((got = negio_conn_next_event(sides[i], &ev)) > 0)
                if (ev.type == NEGIO_EV_ESTABLISHED && i == 0)
                    established = 1;
            if (got < 0) {
                snprintf(err, cap, "%s: %s", i ? "server" : "client",
                         negio_conn_error_detail(sides[i]));
                rc = -1;
                break;
            }
            size_t n;
            const uint8_t *out = negio_conn_send_buf(sides[i], &n);
            if (n > 0) {
                negio_conn_feed(sides[1 - i], out, n);
                negio_conn_send_done(sides[i], n);
                moved = 1;
            }
        }
        if (rc == 0 && !moved && !established) {
            snprintf(err, cap, "the connectors stopped before establishment");
            rc = -1;
        }
    }
    negio_conn_del(c);
    negio_conn_del(s);
    if (rc == 0 && !established)
        return snprintf(err, cap, "no establishment"), -1;
    return rc == 0 ? 0 : -1;
}

int bench_handshake_inprocess(const char *path, int kind, double seconds, bench_gss_result *r,
                              char *err, size_t cap)
{
    OM_uint32 min;
    memset(r, 0, sizeof(*r));
    gss_OID mech = GSS_C_NO_OID;
    gss_cred_id_t icred = GSS_C_NO_CREDENTIAL, acred = GSS_C_NO_CREDENTIAL;
    gss_name_t target = GSS_C_NO_NAME;
    negio_config *cc = NULL, *sc = NULL;
    int rc = 0;
    if (kind == 2) {
        cc = bench_client_config(path, err, cap);
        if (cc == NULL || negio_config_new(&sc, NEGIO_ROLE_SERVER) != 0 ||
            negio_config_set_service(sc, SERVICE) != 0 ||
            negio_config_set_min_level(sc, NEGIO_LEVEL_NONE) != 0) {
            if (cc != NULL)
                snprintf(err, cap, "configuration failed");
            negio_config_del(cc);
            negio_config_del(sc);
            return -1;
        }
    } else if (import_target(&target, err, cap) < 0 ||
               (kind == 0 && (acquire_initiator(path, &mech, &icred, err, cap) < 0 ||
                              acquire_acceptor(&acred, err, cap) < 0))) {
        rc = -1;
    }
    int64_t c0 = bench_thread_cpu_ns(), w0 = bench_now_ns(), limit = (int64_t)(seconds * 1e9);
    long n = 0;
    while (rc == 0 && (n < 3 || bench_thread_cpu_ns() - c0 < limit)) {
        if (kind == 2) {
            rc = negio_pair_handshake(cc, sc, err, cap);
        } else {
            gss_ctx_id_t ictx = GSS_C_NO_CONTEXT, actx = GSS_C_NO_CONTEXT;
            if (kind == 1 && (acquire_initiator(path, &mech, &icred, err, cap) < 0 ||
                              acquire_acceptor(&acred, err, cap) < 0))
                rc = -1;
            if (rc == 0)
                rc = establish(mech, icred, acred, target, &ictx, &actx, err, cap);
            gss_delete_sec_context(&min, &ictx, GSS_C_NO_BUFFER);
            gss_delete_sec_context(&min, &actx, GSS_C_NO_BUFFER);
            if (kind == 1) {
                gss_release_cred(&min, &icred);
                gss_release_cred(&min, &acred);
            }
        }
        if (rc == 0)
            n++;
    }
    r->cpu_s = (double)(bench_thread_cpu_ns() - c0) / 1e9;
    r->wall_s = (double)(bench_now_ns() - w0) / 1e9;
    r->msgs = (double)n;
    gss_release_cred(&min, &icred);
    gss_release_cred(&min, &acred);
    gss_release_name(&min, &target);
    negio_config_del(cc);
    negio_config_del(sc);
    return rc;
}
