/* What the files of the GSS-API provider share (src/gss): the provider's state, the mechanism
 * OIDs, and the status texts. GSS-API types appear in src/gss only. */
#ifndef NEGIO_GSS_INTERNAL_H
#define NEGIO_GSS_INTERNAL_H

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "gss/gss.h"
#include "gss/peer_token.h"

/* Mechanism OIDs (RFC 4178 SPNEGO, RFC 1964 Kerberos 5, its pre-standard and Microsoft
 * variants, and [MS-NLMP] NTLMSSP); oid.c */
extern gss_OID_desc negio__oid_spnego, negio__oid_krb5, negio__oid_krb5_old, negio__oid_krb5_ms,
    negio__oid_ntlm;

/* The plaintext of one unwrap, until negio__gss_release. */
struct plain {
    gss_buffer_desc buf;
    int embedded; /* the one in negio__gss (no allocation per message), else allocated */
    int busy;
};

struct negio__gss {
    const negio_config *cfg;  /* the connector's own copy, alive as long as this */
    negio__cred_cache *cache; /* when set, cred is borrowed from it */
    negio_role role;
    negio_mech want;
    unsigned allowed;
    int require_server_auth;
    OM_uint32 req_flags;
    gss_cred_id_t cred;
    gss_name_t target;
    gss_ctx_id_t ctx;
    gss_name_t peer;
    gss_cred_id_t deleg;
    OM_uint32 flags;
    OM_uint32 lifetime;
    negio_mech won;
    int negotiated;
    int first;
    int complete;
    char *peer_text;
    gss_cred_id_t deleg_in; /* client: delegated credentials to act with (borrowed), or none */
    int peer_unsafe;        /* the peer's name held NUL or control characters */
    int no_ci;              /* client: the credential suppresses Kerberos' CONF and INTEG
                               (GSS_KRB5_CRED_NO_CI_FLAGS_X): the NNS profile below seal */
    OM_uint32 failed_major; /* the failed step's major status (negio__gss_windows_status) */
    struct gss_channel_bindings_struct cb; /* TLS_NEGOTIATE: the TLS channel's bindings */
    int has_cb;
    uint8_t cb_data[NEGIO__CB_MAX];
    negio__peer_tokens tokens; /* what the peer's tokens may be (src/gss/peer_token.c) */
    gss_buffer_desc exported;  /* negio__gss_clone: the context, exported (it is gone from ctx) */
    struct plain plain;        /* the connector holds one unwrapped message at a time */
};

/* oid.c: the mechanism an OID names (NEGIO_MECH_NONE if none negio speaks), and the one a
 * client asks GSS for (every call on one context must name the same one). */
negio_mech negio__gss_mech_of(gss_OID oid);
gss_OID negio__gss_client_oid(const negio__gss *g);

/* status.c: "CALL: MAJOR TEXT; MINOR TEXT (major 0x..., minor ...)" into DETAIL; a received frame
 * that failed its MIC or unwrap, in words first; whether a minor status is the errno ERR. */
void negio__gss_detail(char *detail, const char *call, OM_uint32 major, OM_uint32 minor,
                       gss_OID mech);
/* "WHY; CALL: ..." (as negio__gss_detail when WHY is empty): the words first, cut short if
 * need be so that the status text after them stays whole. */
void negio__gss_detail_why(char *detail, const char *why, const char *call, OM_uint32 major,
                           OM_uint32 minor, gss_OID mech);
void negio__gss_frame_detail(const negio__gss *g, char *detail, const char *call, OM_uint32 major,
                             OM_uint32 minor);
int negio__gss_minor_is_errno(OM_uint32 minor, gss_OID mech, int err);

/* cred.c: names, and the credential of a context (the configuration's shared one, or its own) */
int negio__gss_import_name(const char *text, gss_OID type, gss_name_t *out, char *detail);
int negio__gss_acquire(negio__gss *g, const negio_config *cfg, char *detail);
void negio__gss_drop_cred(negio__gss *g);
void negio__gss_retire_cred(negio__gss *g);

/* explain.c: a failure in words a person can act on, then the mechanism's status, into DETAIL
 * (failure paths only: they may ask the KDC again). A context step of CALL that failed on the
 * peer's token IN (NULL for a client's first step); a credential acquisition of CALL; and the
 * words for a client given the server's failure report (REASON, error token TOK), into OUT. */
void negio__gss_explain_step(negio__gss *g, const char *call, OM_uint32 maj, OM_uint32 min,
                             gss_OID mech, const uint8_t *in, size_t in_len, char *detail);
void negio__gss_explain_acquire(negio__gss *g, const negio_config *cfg, const char *call,
                                OM_uint32 maj, OM_uint32 min, char *detail);
void negio__gss_explain_peer(negio__gss *g, const uint8_t *tok, size_t len, const char *reason,
                             char *out, size_t cap);

#endif
