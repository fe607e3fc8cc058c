/* What the GSS provider can find out about its environment, in words a person can act on: the
 * reasons behind a failure that GSS-API does not give (MIT's gss_acquire_cred_with_password drops
 * the Kerberos reason, SPNEGO drops the Kerberos failure it fell back from), the credential check
 * (negio_config_check_credentials) and the checks of `negio doctor`. Used by src/gss/explain.c and
 * by tools/negio/doctor.c, which links the static library: this header is internal, not API, and
 * holds no GSS-API or krb5 type (docs/ARCHITECTURE.md section 8.4).
 *
 * Each function that can fail fills a negio__why: what is wrong, and what to do about it. Those
 * that may contact the KDC say so: they block for as long as the KDC takes, so the library calls
 * them on failure paths only, never on the way to a success. */
#ifndef NEGIO_GSS_DIAG_H
#define NEGIO_GSS_DIAG_H

#include <stddef.h>

/* A finding: TEXT says what is wrong ("kerberos: ..."), ADVICE what to do (may be empty). */
typedef struct negio__why {
    char text[384];
    char advice[256];
} negio__why;

/* "TEXT: ADVICE" (or TEXT alone) into OUT of CAP bytes. */
void negio__why_format(const negio__why *w, char *out, size_t cap);
/* Sets W's text, or its advice (cut to fit). */
void negio__why_text(negio__why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void negio__why_advice(negio__why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends to the string OUT of CAP bytes (cut to fit). */
void negio__append(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define NEGIO__DIAG_NAME 256

/* A Kerberos ticket: one of a credential cache, or one just obtained. */
typedef struct negio__diag_ticket {
    char server[NEGIO__DIAG_NAME];
    char enctype[48]; /* of the service key the ticket is encrypted in ("" if unknown) */
    int kvno;         /* that key's version (0: the ticket does not say) */
    long long start;  /* seconds since the epoch */
    long long end;    /* idem: when it expires */
    long long renew;  /* idem: renewable until (0: not renewable) */
} negio__diag_ticket;

#define NEGIO__DIAG_TICKETS 16
typedef struct negio__ccache_facts {
    char name[300];                   /* TYPE:RESIDUAL */
    char principal[NEGIO__DIAG_NAME]; /* "" when the cache cannot be read */
    negio__diag_ticket tgt;           /* the ticket-granting ticket (server "" if none) */
    negio__diag_ticket tickets[NEGIO__DIAG_TICKETS];
    size_t ntickets;
    size_t more; /* tickets beyond those listed */
} negio__ccache_facts;

#define NEGIO__DIAG_KEYS 32
typedef struct negio__key_facts {
    char principal[NEGIO__DIAG_NAME];
    int kvno;
    char enctype[48];
} negio__key_facts;

typedef struct negio__keytab_facts {
    char name[300];                          /* TYPE:RESIDUAL */
    char principal[NEGIO__DIAG_NAME];        /* the service principal looked for ("" for any) */
    negio__key_facts keys[NEGIO__DIAG_KEYS]; /* the principal's keys (every key for any) */
    size_t nkeys;
    size_t more;      /* keys beyond those listed */
    char others[256]; /* other principals the keytab holds, for the advice */
} negio__keytab_facts;

typedef struct negio__diag_config {
    char files[512];         /* the krb5.conf files read (KRB5_CONFIG or the default) */
    char default_realm[128]; /* "" if none */
    char kdcs[256];          /* the default realm's kdc entries ("" if none: DNS or nothing) */
    long clockskew;          /* seconds of skew allowed */
    char canonicalize[16];   /* dns_canonicalize_hostname: "true", "false" or "fallback" */
    char rdns[8];            /* "true" or "false" */
} negio__diag_config;

/* The Kerberos configuration in effect. Local. 0, or -1 when there is none usable. */
int negio__diag_config_read(negio__diag_config *out, negio__why *why);

/* The Kerberos principal SERVICE ("service@host") names, as MIT builds it for both sides (its
 * host name rules, domain_realm): "service/host@REALM", into OUT. Local (DNS when krb5.conf
 * canonicalises). 0 or -1. */
int negio__diag_service_principal(const char *service, char *out, size_t cap, negio__why *why);

/* The credential cache NAME (NULL: the default, KRB5CCNAME): its principal and tickets. 0 when it
 * holds a ticket-granting ticket that has not expired; -1 otherwise (no cache, no TGT, expired).
 * Local. */
int negio__diag_ccache(const char *name, negio__ccache_facts *out, negio__why *why);

/* An AS exchange for USER with PASSWORD, the tickets thrown away. Contacts the KDC. 0 or -1. */
int negio__diag_password(const char *user, const char *password, negio__why *why);

/* A service ticket for SERVICE ("service@host") as a client would get it: with USER and PASSWORD
 * when USER is set, else from the cache CCACHE (NULL: the default) or, when it holds nothing, the
 * client keytab CLIENT_KEYTAB (NULL: KRB5_CLIENT_KTNAME). Contacts the KDC. Fills *T. 0 or -1. */
int negio__diag_service_ticket(const char *service, const char *ccache, const char *client_keytab,
                               const char *user, const char *password, negio__diag_ticket *t,
                               negio__why *why);

/* The key the KDC encrypts tickets for SERVICE in now (*T: kvno and enctype), learned with the
 * credentials of the cache CCACHE (NULL: the default) if it has a TGT, else with the keytab
 * KEYTAB's own key for SERVICE (an AS exchange for a ticket to itself, which also proves the
 * keytab's key is the KDC's). HOW says which. Contacts the KDC. 0 or -1. */
int negio__diag_kdc_key(const char *service, const char *keytab, const char *ccache,
                        negio__diag_ticket *t, char *how, size_t hcap, negio__why *why);

/* The KDC's clock against this host's: *OFFSET = KDC - here, in seconds, read from a KRB-ERROR
 * the KDC of REALM (NULL: the default realm) sends to a request made to draw one; *ALLOWED the
 * skew tolerated (krb5.conf clockskew). Contacts the KDC. 0 when within ALLOWED, -1 when not,
 * -2 when the KDC's time could not be learned (*OFFSET 0; WHY says why: unreachable, say). */
int negio__diag_kdc_clock(const char *realm, long *offset, long *allowed, negio__why *why);

/* The keytab PATH (NULL: the default, KRB5_KTNAME) for SERVICE ("service@host"; NULL: any key):
 * it exists, can be read, and holds keys for the service principal of an enctype krb5.conf
 * permits. Local. 0 or -1. */
int negio__diag_keytab(const char *path, const char *service, negio__keytab_facts *out,
                       negio__why *why);
/* Whether KT (as filled above) holds key version KVNO of ENCTYPE (a name, as in the structs). */
int negio__diag_keytab_has(const negio__keytab_facts *kt, int kvno, const char *enctype);

/* NTLM: the account file FILE (NULL: NTLM_USER_FILE) an initiator without a password takes its
 * account from (its first entry, into ACCOUNT as DOMAIN\user). Local. 0 or -1. */
int negio__diag_ntlm_client(const char *file, char *account, size_t cap, negio__why *why);
/* NTLM: the account file FILE (NULL: NTLM_USER_FILE) an acceptor checks passwords against; the
 * number of accounts in *COUNT. Local. 0 or -1. */
int negio__diag_ntlm_server(const char *file, size_t *count, negio__why *why);
/* Whether the GSS-API library offers NTLM (gss-ntlmssp, from GSS_MECH_CONFIG or
 * /etc/gss/mech.d). Local. 0 or -1. */
int negio__diag_ntlm_mech(negio__why *why);

#endif
