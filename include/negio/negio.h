/*
 * negio — Negotiate (SPNEGO), Kerberos and NTLM authentication and per-message protection
 * for byte streams, as a sans-I/O "connector".
 *
 * Conventions (they hold for every function in this header):
 *  - Objects are opaque, created by *_new(&out, ...) and freed by *_del(). *_del(NULL) is a no-op.
 *  - Functions returning int return 0 (NEGIO_OK) or a positive count on success and a negative
 *    NEGIO_ERR_* code on failure; negio_strerror() names the code. Each function's comment ends
 *    with the exact list of codes it can return.
 *  - A connector never touches a socket, never prints and never starts a thread. Bytes from the
 *    wire go in with negio_conn_feed() (or negio_conn_recv_buf()/negio_conn_recv_done()), bytes
 *    for the wire come out with negio_conn_send_buf()/negio_conn_send_done(), application
 *    messages go in with negio_conn_write() and everything that happens comes out of
 *    negio_conn_next_event().
 *  - Errors on a connector are sticky: after the first fatal error every call that would do work
 *    returns that same code, nothing more is delivered, and negio_conn_error_detail() holds the
 *    cause (for GSS failures: the call, the major and the minor status text).
 *  - A connector is not thread-safe: one thread at a time may call into it. negio_conn_step() may
 *    run on a different thread than the other calls (for instance a worker pool), provided no
 *    other call on the same connector runs at the same time.
 *  - Structures that cross the API by pointer can grow: later versions append fields. They are
 *    negio_limits and negio_auth_info here, negio_engine_options (engine.h) and
 *    negio_identity_policy (identity.h). Each begins with `uint32_t size`, the number of bytes
 *    of the structure the caller has, so that a program and a library built with different
 *    versions of these headers agree on what is there (docs/ARCHITECTURE.md section 17.4):
 *     - size is sizeof(the structure), or 0, which stands for the layout of negio 0.2 (every
 *       field the 0.2 headers declare): `= {0}`, designated initialisers and memset() leave it
 *       0 and keep working. A field added after 0.2 is used only when size covers it, so new
 *       code sets size = sizeof.
 *     - A structure the caller passes in: the library reads its first size bytes and no more;
 *       a field beyond them takes its default, as if zero. Bytes beyond the fields this library
 *       knows (a program built with newer headers) must be zero, else the call fails with
 *       NEGIO_ERR_INVALID: they ask for something this library cannot do.
 *     - A structure the library fills: it writes the first size bytes and no more, zero where
 *       it has no field, and sets size to the bytes it filled: fields beyond that are absent
 *       (a library older than the headers).
 *     - A size of 1 to 3 (not even the size itself) or over 4096 is NEGIO_ERR_INVALID.
 */
#ifndef NEGIO_NEGIO_H
#define NEGIO_NEGIO_H

#include <stddef.h>
#include <stdint.h>

#include "negio/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NEGIO_BUILDING)
#define NEGIO_API __attribute__((visibility("default")))
#else
#define NEGIO_API
#endif

#define NEGIO_PROTOCOL_VERSION 2

/* The library's own version (negio/version.h holds the headers'): NEGIO_VERSION_NUMBER and
 * NEGIO_VERSION_STRING as they were when the library was built. */
NEGIO_API unsigned negio_version(void);
NEGIO_API const char *negio_version_string(void);

/* CLOSE status values (docs/PROTOCOL.md section 6.8). 0 is a normal close; a failing side sends
 * its error code negated (101..113); applications should not use 100..199. */
#define NEGIO_STATUS_EXPIRED 120 /* the sender's security context ended (its ticket expired) */
#define NEGIO_STATUS_FORBIDDEN                                                                     \
    121 /* the peer is authenticated, but not allowed (an access list)                             \
         */
#define NEGIO_STATUS_UNAVAILABLE                                                                   \
    122 /* the service behind the sender could not be reached or                                   \
            failed (a relay's plain side: refused, timed out, reset) */

/* Error codes: one table for the whole library, the engine (engine.h) and identity (identity.h)
 * included, with a range reserved for each layer. negio_strerror() and negio_err_name() know
 * every code below.
 *
 *        0          NEGIO_OK
 *     -1 ..  -19    the connector: a call refused; nothing changed
 *    -20 ..  -39    the engine (libnegio_uv): a call refused, or (on_closed) why a connection
 *                   could not be made or kept
 *    -40 ..  -59    identity: no acceptable account, or the identity could not be switched
 *    -60 ..  -99    reserved for future layers (not fatal)
 *   -100            NEGIO_ERR_FATAL, the threshold: every code at or below it is fatal for the
 *                   connection (sticky: every later call returns it)
 *   -101 .. -199    fatal errors of the connector and its providers (GSS-API, TLS). Negated,
 *                   they are the CLOSE status values of docs/PROTOCOL.md section 6.8 (101..113
 *                   today), so a code here is never renumbered, only added
 *   below -199      reserved
 *
 * Codes are never reused for another meaning; a code's number, once released, stays. */
enum {
    NEGIO_OK = 0,
    /* the connector: refusals */
    NEGIO_ERR_INVALID = -1,  /* a bad argument; nothing changed */
    NEGIO_ERR_STATE = -2,    /* the call is not valid in the connector's current state */
    NEGIO_ERR_LEVEL = -3,    /* a write at a level the peer does not take (below its announced
                                minimum; in the NNS profile, any level but the stream's); not
                                sent */
    NEGIO_ERR_MSG_SIZE = -4, /* a write over the maximum message size; not sent */
    /* the engine (engine.h) */
    NEGIO_ERR_BUSY = -20,    /* the connection holds its hard limit for sending: retry later;
                                (negio_engine_shutdown) connections were still open */
    NEGIO_ERR_ADDRESS = -21, /* an address could not be parsed, resolved, bound or reached */
    NEGIO_ERR_SYSTEM = -22,  /* a system call failed; the detail names it */
    /* identity (identity.h) */
    NEGIO_ERR_IDENTITY = -40,   /* no acceptable local account for this peer; see the detail */
    NEGIO_ERR_PERMISSION = -41, /* this process may not switch identities */
    /* fatal */
    NEGIO_ERR_FATAL = -100,       /* threshold: this and below are fatal and sticky */
    NEGIO_ERR_NOMEM = -101,       /* an allocation failed */
    NEGIO_ERR_PROTOCOL = -102,    /* the peer broke the framing or the conversation */
    NEGIO_ERR_TOO_LARGE = -103,   /* an announced length over a configured limit */
    NEGIO_ERR_TRUNCATED = -104,   /* the stream ended without a protected close */
    NEGIO_ERR_HANDSHAKE = -105,   /* GSS-API failed to establish the context */
    NEGIO_ERR_PEER = -106,        /* the peer reported a handshake failure */
    NEGIO_ERR_POLICY = -107,      /* mechanism, flags, server authentication or levels refused */
    NEGIO_ERR_DOWNGRADE = -108,   /* a frame below this side's minimum protection level */
    NEGIO_ERR_INTEGRITY = -109,   /* a signed or sealed frame failed verification */
    NEGIO_ERR_CREDENTIALS = -110, /* credentials could not be acquired */
    NEGIO_ERR_CLOSED = -111,      /* the connection was closed; no more traffic */
    NEGIO_ERR_REJECTED = -112,    /* the peer closed with a non-zero status after authentication */
    NEGIO_ERR_BINDING = -113,     /* the authentication is not bound to this TLS channel: a man
                                     in the middle, or a proxy terminating TLS */
};

/* Returns a static English description of an error code ("unknown error" for others). */
NEGIO_API const char *negio_strerror(int code);
/* Returns the code's symbolic name, e.g. "NEGIO_ERR_PROTOCOL" ("NEGIO_ERR_UNKNOWN" for others). */
NEGIO_API const char *negio_err_name(int code);

typedef enum negio_role { NEGIO_ROLE_CLIENT = 1, NEGIO_ROLE_SERVER = 2 } negio_role;

/* What a client asks for. NEGIO_MECH_NEGOTIATE uses SPNEGO over the allowed mechanisms. */
typedef enum negio_mech {
    NEGIO_MECH_NONE = 0,
    NEGIO_MECH_NEGOTIATE = 1,
    NEGIO_MECH_KERBEROS = 2,
    NEGIO_MECH_NTLM = 3,
} negio_mech;

/* Allowed-mechanism mask (both roles): what may win the negotiation. */
#define NEGIO_ALLOW_KERBEROS 0x1u
#define NEGIO_ALLOW_NTLM 0x2u
#define NEGIO_ALLOW_ALL (NEGIO_ALLOW_KERBEROS | NEGIO_ALLOW_NTLM)

/* Per-message protection levels, in increasing strength. */
typedef enum negio_level {
    NEGIO_LEVEL_DEFAULT = -1, /* for negio_conn_write(): the connection's default level */
    NEGIO_LEVEL_NONE = 0,     /* plaintext: no integrity, no confidentiality */
    NEGIO_LEVEL_SIGN = 1,     /* integrity: a MIC over frame header and payload */
    NEGIO_LEVEL_SEAL = 2,     /* confidentiality and integrity: GSS_Wrap with conf_req */
} negio_level;

/* Context flags, as granted by the mechanism (negio_auth_info.flags). */
#define NEGIO_FLAG_DELEG 0x01u
#define NEGIO_FLAG_MUTUAL 0x02u
#define NEGIO_FLAG_REPLAY 0x04u
#define NEGIO_FLAG_SEQUENCE 0x08u
#define NEGIO_FLAG_CONF 0x10u
#define NEGIO_FLAG_INTEG 0x20u
#define NEGIO_FLAG_ANON 0x40u
/* The client allowed identification only (Windows' TokenImpersonationLevel.Identification,
 * GSS_C_IDENTIFY_FLAG): a server may learn who it is but not act as it (negio_conn_user refuses).
 */
#define NEGIO_FLAG_IDENTIFY 0x80u

NEGIO_API const char *negio_mech_name(negio_mech mech);    /* "negotiate", "kerberos", "ntlm" */
NEGIO_API const char *negio_level_name(negio_level level); /* "none", "sign", "seal" */
/* Parses "negotiate"/"kerberos"/"ntlm" and "none"/"sign"/"seal".
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (any other name, or a NULL argument). */
NEGIO_API int negio_mech_parse(const char *name, negio_mech *out);
NEGIO_API int negio_level_parse(const char *name, negio_level *out);

/* ---------------------------------------------------------------------------------------------
 * Configuration. A config is copied by negio_conn_new(); it may be changed or freed afterwards
 * without affecting existing connectors.
 *
 * Threads: a configuration that no thread changes may be used by any number of threads at once,
 * by the calls that read it: negio_conn_new(), negio_config_dup(), negio_engine_listen() and
 * negio_engine_connect() (which copy it) and the negio_config_get_*() calls. What those calls
 * set up inside it is made once, whichever thread comes first, under a lock or an atomic
 * operation: the GSS credential cache (the credentials themselves are acquired once, under the
 * cache's lock, by the first connector that needs them and then used by every connector made
 * from the configuration or its copies, on any thread: MIT krb5 locks its credentials,
 * gss-ntlmssp's are read-only once acquired) and the TLS context (built by the first
 * connection). Every call that changes a configuration (negio_config_set_*(),
 * negio_config_add_user_map(), negio_config_tls_check(), negio_config_del()) needs it to itself:
 * no other call on the same configuration may run meanwhile. The log function is called on the
 * thread of whichever connector made from the configuration logs.
 */
typedef struct negio_config negio_config;

/* Size and count limits. A zero field keeps the default (shown). Growable: see size above. */
typedef struct negio_limits {
    uint32_t size;        /* sizeof(negio_limits), or 0: the 0.2 layout (the conventions above) */
    uint32_t max_token;   /* largest handshake token accepted (65536; at most 16 MiB) */
    uint32_t max_rounds;  /* most handshake frames accepted from the peer (8) */
    uint32_t max_frame;   /* largest frame body accepted (1048576; at least 4096) */
    uint32_t max_message; /* largest application message accepted or sent (16777216) */
    uint32_t max_queued;  /* most bytes buffered by writes made before completion (16777216) */
} negio_limits;

typedef void (*negio_log_fn)(void *user, int level, const char *message);

/* Creates a configuration with defaults: mechanism negotiate, all mechanisms allowed, default
 * level seal, minimum level sign, mutual authentication requested, steps run inline.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_new(negio_config **out, negio_role role);
NEGIO_API void negio_config_del(negio_config *cfg);

/* Client: which mechanism to use. Server: ignored (the server accepts what is allowed).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_mech(negio_config *cfg, negio_mech mech);
/* Both roles: which mechanisms may win (NEGIO_ALLOW_*); a win outside it is NEGIO_ERR_POLICY.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (empty or unknown bits). */
NEGIO_API int negio_config_set_allowed(negio_config *cfg, unsigned allowed);

/* Client: the target service as "service@host" (e.g. "negio@localhost"). Required.
 * Server: the service principal to accept for, as "service@host"; NULL accepts for any key in
 * the keytab (with an explicit keytab path or NTLM file and NTLM allowed, a server name is
 * required: gss-ntlmssp 1.2 limitation).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_service(negio_config *cfg, const char *service_at_host);

/* Server: keytab path (NULL: the default, KRB5_KTNAME). Client: a client keytab path.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_keytab(negio_config *cfg, const char *path);
/* Client: credential cache name, e.g. "FILE:/tmp/cc" (NULL: the default, KRB5CCNAME).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_ccache(negio_config *cfg, const char *name);
/* Both: the NTLM account file (DOMAIN:USER:PASSWORD lines) for gss-ntlmssp; NULL keeps
 * NTLM_USER_FILE. Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_ntlm_file(negio_config *cfg, const char *path);
/* Client: authenticate as USER with PASSWORD (Kerberos: a TGT is obtained in memory; NTLM:
 * "DOMAIN\user" or "user"). The password is copied and wiped when the config is freed; a
 * connector's own copy is wiped once its first step has acquired the credentials.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_password(negio_config *cfg, const char *user, const char *password);

/* Both: the level used by negio_conn_write(..., NEGIO_LEVEL_DEFAULT) and the lowest level
 * accepted from the peer. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_default_level(negio_config *cfg, negio_level level);
NEGIO_API int negio_config_set_min_level(negio_config *cfg, negio_level level);
/* Client: fail unless the server was authenticated (Kerberos with mutual authentication). NTLM,
 * which cannot authenticate a server, is then never offered, so no NTLM message reaches the
 * server. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_require_server_auth(negio_config *cfg, int on);
/* Client, negotiate: whether SPNEGO may end on NTLM after this client offered Kerberos, that is
 * after it obtained a ticket for the service and sent it as its first choice (default off). A
 * server that answers such a client with NTLM is either an attacker on the path who rewrote the
 * offer, or a server without a key for the service; either way the client is refused with
 * NEGIO_ERR_POLICY, before it produces any NTLM message, unless this is on. A client without a
 * Kerberos ticket for the service offers NTLM alone, and it is used whatever this says
 * (docs/SECURITY.md section 6). Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_allow_ntlm_fallback(negio_config *cfg, int on);
/* Client: request mutual authentication (default on). Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_mutual(negio_config *cfg, int on);
/* Both: the Kerberos fast path (default on). Once a Kerberos context is established, directly or
 * through SPNEGO, with an AES enctype (aes128/aes256-cts-hmac-sha1-96, aes128-cts-hmac-sha256-128,
 * aes256-cts-hmac-sha384-192), negio takes its keys and sequence numbers from MIT's library
 * (gss_krb5_export_lucid_sec_context) and makes and checks the RFC 4121 tokens of every signed or
 * sealed message itself, on OpenSSL, instead of gss_wrap and gss_get_mic: the same bytes on the
 * wire, with the same replay and order checks, several times faster where MIT's library uses its
 * built-in crypto (Debian, Ubuntu). Other enctypes (RC4, DES3) and NTLM stay on the GSS-API path.
 * Off keeps every message on MIT's code, for deployments that must use only that (a certified
 * crypto module, or while ruling negio's code out of a fault). The environment variable
 * NEGIO_KRB5_FAST_PATH=0 switches it off for every connection of the process, whatever this says
 * (docs/SECURITY.md section 7a). Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_kerberos_fast_path(negio_config *cfg, int on);
/* Client: request delegation of the client's credentials (default off); the same as
 * negio_config_set_impersonation(cfg, NEGIO_IMPERSONATION_DELEGATE), and off the same as
 * NEGIO_IMPERSONATION_IMPERSONATE. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_delegate(negio_config *cfg, int on);
/* What a server may do as the client: Windows' TokenImpersonationLevel.
 * Client: what it allows. IDENTIFY asks for GSS_C_IDENTIFY_FLAG (Kerberos carries it in the
 * authenticator's checksum flags, NTLM as NEGOTIATE_IDENTIFY): the server may learn the client's
 * name but not act as it. IMPERSONATE (the default) asks for nothing. DELEGATE asks for
 * GSS_C_DELEG_FLAG (negio_config_set_delegate): Kerberos forwards a ticket; NTLM cannot delegate.
 * Server: the least it requires of a client (default IDENTIFY: any). A client that allows less
 * fails with NEGIO_ERR_POLICY; a client that allowed identification only shows NEGIO_FLAG_IDENTIFY
 * in negio_auth_info.flags and is refused by negio_conn_user(). Returns NEGIO_OK,
 * NEGIO_ERR_INVALID. */
typedef enum negio_impersonation {
    NEGIO_IMPERSONATION_IDENTIFY = 1,
    NEGIO_IMPERSONATION_IMPERSONATE = 2,
    NEGIO_IMPERSONATION_DELEGATE = 3,
} negio_impersonation;
NEGIO_API int negio_config_set_impersonation(negio_config *cfg, negio_impersonation level);
/* Server: how peers map to local accounts (negio_auth_info.local_name; include/negio/identity.h
 * acts on it). The rules, in order:
 *  1. an explicit entry added here for the peer's exact name ("alice@REALM" for Kerberos;
 *     "DOMAIN\user" for NTLM, compared without regard to case);
 *  2. Kerberos: gss_localname(), i.e. the krb5.conf auth_to_local rules of the realm;
 *  3. NTLM "DOMAIN\user": "user" in lower case, only if DOMAIN equals the NTLM domain set here
 *     (without regard to case); "user" without a domain and any other domain map to nothing.
 * A result that is empty, over 255 bytes, or holds '/', ':', NUL, a newline or another control
 * character maps to nothing. Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_add_user_map(negio_config *cfg, const char *principal,
                                        const char *local_name);
/* Server: the NTLM domain of rule 3 above (NULL: none, so NTLM peers map only through explicit
 * entries). Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_ntlm_domain(negio_config *cfg, const char *domain);
/* Both: the wire profile. NEGIO_PROFILE_NATIVE is negio's protocol (docs/PROTOCOL.md).
 * NEGIO_PROFILE_GSS_SAMPLE speaks the conversation of MIT's gss-sample programs (gss-client,
 * gss-server): 1 flag byte and a 4-byte big-endian length per token, no policy exchange and no
 * protected close. A client's message goes as DATA with SEND_MIC, wrapped and encrypted at seal,
 * wrapped without confidentiality at sign, unwrapped at none; the server answers each one with a
 * MIC of the plaintext (or a NOOP when no MIC was asked for), which the client verifies
 * (NEGIO_EV_ACKNOWLEDGED). A received message's level is what its token proves (a wrap token's
 * confidentiality), never the unprotected flag byte alone; a wrap token flagged ENCRYPTED
 * without confidentiality is fatal. The end of the conversation (an empty NOOP) is unprotected.
 * NEGIO_PROFILE_NNS speaks [MS-NNS], the .NET NegotiateStream protocol (System.Net.Security.
 * NegotiateStream, WCF's net.tcp), docs/PROTOCOL.md appendix C: handshake messages (5-byte
 * header) around the same GSS conversation, then data messages (a 4-byte little-endian length
 * and a wrap token, or a MIC and the plaintext at sign), or no framing at all at level none. The
 * protection level is one per stream, read from the context's flags (confidentiality: seal,
 * integrity: sign, else none): the client asks for the higher of its default and minimum levels,
 * and each side fails unless the stream's level reaches its own minimum (the server then sends
 * the Windows code ERROR_TRUST_FAILURE). Every message travels at the stream's level: a write at
 * NEGIO_LEVEL_DEFAULT or at the configured default level goes at it, any other level is
 * NEGIO_ERR_LEVEL (unless it is the stream's level). The stream is a byte stream: a write larger
 * than one data message (63536 bytes) reaches the peer as several NEGIO_EV_MESSAGE events, and an
 * empty write sends nothing. No policy is exchanged (negio_auth_info.peer_min_level is none,
 * peer_default_level the stream's level) and there is no close message: the end of the stream
 * between messages is a normal end (NEGIO_EV_CLOSED), and negio_conn_close() once established
 * sends nothing and ends the conversation at once (NEGIO_EV_CLOSED next; the application then
 * ends the stream). Under negio_config_set_half_close() each direction ends with its sender's
 * FIN instead: negio_conn_close() ends this side's sending (NEGIO_WANT_SHUTDOWN: the owner
 * shuts down the sending half of the stream once the output is sent, and reads on), and the
 * peer's end between messages is its half-close. A negio_conn_close() with a non-zero status by
 * a server whose HandshakeDone has not yet been taken from the connector (the engine's
 * on_authenticated) sends a HandshakeError in its place: ERROR_ACCESS_DENIED for
 * NEGIO_STATUS_FORBIDDEN, which a negio client reports as NEGIO_ERR_REJECTED. Not over TLS.
 * docs/SECURITY.md section 8.7 says what this profile cannot protect.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID. */
typedef enum negio_profile {
    NEGIO_PROFILE_NATIVE = 0,
    NEGIO_PROFILE_GSS_SAMPLE = 1,
    NEGIO_PROFILE_NNS = 2,
} negio_profile;
NEGIO_API int negio_config_set_profile(negio_config *cfg, negio_profile profile);
/* Both: the transport under negio's frames.
 * NEGIO_TRANSPORT_PLAIN: negio's frames directly on the stream (docs/PROTOCOL.md), the default.
 * NEGIO_TRANSPORT_TLS: TLS only (OpenSSL; TLS 1.3 by default, 1.2 allowed, older refused, no
 *   renegotiation). No GSS-API: the server is authenticated by its certificate, the client by
 *   its certificate if one is required. Messages travel inside TLS at level none; sign and seal
 *   do not exist here (negio_conn_new() refuses such levels with NEGIO_ERR_INVALID).
 * NEGIO_TRANSPORT_TLS_NEGOTIATE: TLS, then negio's whole GSS conversation inside it, with GSS
 *   channel bindings taken from that TLS session (RFC 9266 tls-exporter with TLS 1.3, RFC 5929
 *   tls-server-end-point with TLS 1.2): the Kerberos or NTLM authentication holds for that one
 *   TLS session, and a man in the middle terminating TLS is NEGIO_ERR_BINDING. Sign and seal
 *   remain available per message.
 *   Certificate-free mode: a server given no certificate presents an ephemeral self-signed one,
 *   and a client given no CA file does not check the certificate; it relies on Kerberos mutual
 *   authentication bound to the channel instead, so in this mode NTLM (which cannot
 *   authenticate a server) is refused on both sides unless negio_config_set_tls_allow_ntlm().
 * Choosing a TLS transport sets the default and minimum levels to none (TLS protects every
 * byte); set them again afterwards to sign or seal messages inside TLS as well.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
typedef enum negio_transport {
    NEGIO_TRANSPORT_PLAIN = 0,
    NEGIO_TRANSPORT_TLS = 1,
    NEGIO_TRANSPORT_TLS_NEGOTIATE = 2,
} negio_transport;
NEGIO_API int negio_config_set_transport(negio_config *cfg, negio_transport transport);
/* TLS, both roles: this side's certificate chain and private key (PEM files). Required for a
 * server with NEGIO_TRANSPORT_TLS; optional for a client (presented when the server asks).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM (files are read by negio_config_tls_check()
 * or at the first connection). */
NEGIO_API int negio_config_set_tls_cert(negio_config *cfg, const char *cert_file,
                                        const char *key_file);
/* TLS, both roles: the CA certificates (PEM file) that verify the peer's certificate. Client:
 * without one, NEGIO_TRANSPORT_TLS uses the system's trust store and TLS_NEGOTIATE runs
 * certificate-free. Server: client certificates are asked for and verified against it.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_tls_ca(negio_config *cfg, const char *ca_file);
/* TLS client: the host name the server's certificate must hold (default: the host part of
 * negio_config_set_service()). Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_tls_host(negio_config *cfg, const char *host);
/* TLS server: fail the handshake unless the client presents a certificate that verifies against
 * the CA file. Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_tls_require_client_cert(negio_config *cfg, int on);
/* TLS_NEGOTIATE in certificate-free mode: allow NTLM anyway (the server is then authenticated
 * by nothing at all). Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_tls_allow_ntlm(negio_config *cfg, int on);
/* TLS, both roles: the highest version offered or accepted, 13 (TLS 1.3, the default) or 12
 * (TLS 1.2, for peers or tests that need it). Nothing below TLS 1.2 is ever accepted.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_set_tls_max_version(negio_config *cfg, int version);
/* Loads the TLS certificate, key and CA files now (or makes the ephemeral certificate) instead
 * of at the first connection, to report a bad file at start-up. Writes the cause into DETAIL
 * (CAP bytes, may be 0). Connections made from this configuration, or from copies of it, share
 * what was loaded. Returns NEGIO_OK (also without a TLS transport), NEGIO_ERR_INVALID,
 * NEGIO_ERR_CREDENTIALS, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_tls_check(negio_config *cfg, char *detail, size_t cap);
/* Checks, from what is on this host (no KDC is asked, nothing blocks on the network), that the
 * configuration can authenticate at all, so that a program reports a missing key at start-up
 * instead of failing every peer. Server: with Kerberos allowed, the keytab (the configured one,
 * else KRB5_KTNAME, else the system's) exists, can be read, and holds keys for the service
 * principal (any principal without a service name) of an encryption type krb5.conf permits; with
 * NTLM allowed, the NTLM account file, if one is named (negio_config_set_ntlm_file or
 * NTLM_USER_FILE), can be read and holds accounts; NTLM alone needs the NTLM mechanism. Client:
 * a password, or for some allowed mechanism credentials here (a credential cache with a
 * ticket-granting ticket that has not expired, or a client keytab; an NTLM account file). Writes
 * into DETAIL (CAP bytes, may be 0) what is missing, naming the file, the principal and the
 * mechanism, e.g. "kerberos: the keytab FILE:/etc/negio.keytab holds no key for
 * negio/host.example.com@EXAMPLE.COM (it holds HTTP/host.example.com@EXAMPLE.COM): ...", or (a
 * server that passes) what it found. Always NEGIO_OK with NEGIO_TRANSPORT_TLS (no GSS-API).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (a NULL configuration), NEGIO_ERR_CREDENTIALS. */
NEGIO_API int negio_config_check_credentials(negio_config *cfg, char *detail, size_t cap);
NEGIO_API negio_transport negio_config_get_transport(const negio_config *cfg);

/* Both: limits, see negio_limits. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_limits(negio_config *cfg, const negio_limits *limits);
/* Both: run blocking handshake steps inside negio_conn_next_event() (inline, the default) or
 * only when the owner calls negio_conn_step() (deferred, e.g. on a worker thread).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_deferred_steps(negio_config *cfg, int deferred);
/* Both, negio's own profile: a CLOSE with status 0 from the peer is a half-close
 * (docs/PROTOCOL.md section 4.5). Off (the default): the connector answers it with its own
 * CLOSE at once, and NEGIO_EV_CLOSED ends the connection. On: NEGIO_EV_CLOSED says that the peer
 * will send nothing more, but this side may go on writing (a relay passing on the rest of a
 * reply after its client shut down its sending half) until it calls negio_conn_close(), which
 * sends the answering CLOSE. NEGIO_PROFILE_NNS has no close message and carries the same
 * half-close as the stream's own (TCP's FIN of each sending half): see negio_config_set_profile.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_half_close(negio_config *cfg, int on);
/* Both: a log callback for diagnostics (never required). Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_log(negio_config *cfg, negio_log_fn fn, void *user);

/* Copies a configuration (strings included). The copy shares the original's credentials
 * (acquired once, by whichever connector of either needs them first) until a setter that
 * affects acquisition is called on one of them. Returns NEGIO_OK, NEGIO_ERR_INVALID,
 * NEGIO_ERR_NOMEM. */
NEGIO_API int negio_config_dup(negio_config **out, const negio_config *cfg);
/* Read back what a configuration holds (for layers built on the connector, like the engine). */
NEGIO_API negio_role negio_config_get_role(const negio_config *cfg);
NEGIO_API negio_level negio_config_get_default_level(const negio_config *cfg);
/* Fills *LIMITS (its size set: see the conventions above) with the limits in force, defaults
 * included. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_get_limits(const negio_config *cfg, negio_limits *limits);
/* The configured "service@host", or NULL. */
NEGIO_API const char *negio_config_get_service(const negio_config *cfg);

/* ---------------------------------------------------------------------------------------------
 * The connector.
 */
typedef struct negio_conn negio_conn;
/* Credentials a client delegated to a server connection (include/negio/identity.h). */
typedef struct negio_delegated negio_delegated;

/* Creates a connector for one connection. A client is ready to produce its first token at once
 * (see NEGIO_WANT_STEP). Credentials are acquired in the first step, not here.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (missing target on a client; a transport other than
 * NEGIO_TRANSPORT_PLAIN with a profile other than NEGIO_PROFILE_NATIVE; NEGIO_TRANSPORT_TLS with
 * a minimum or default level above none), NEGIO_ERR_NOMEM. */
NEGIO_API int negio_conn_new(negio_conn **out, const negio_config *cfg);
/* Frees the connector, its GSS context, credentials and buffers (secrets are wiped). */
NEGIO_API void negio_conn_del(negio_conn *conn);

/* Appends LEN received bytes. Nothing is parsed until negio_conn_next_event(), which checks each
 * announced length against the limits before the connector asks for more: call it after every
 * feed so that buffering stays bounded by one frame.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_STATE (after negio_conn_feed_eof(), or while a
 * negio_conn_recv_buf() region is outstanding), NEGIO_ERR_NOMEM, or the sticky fatal error. */
NEGIO_API int negio_conn_feed(negio_conn *conn, const void *data, size_t len);
/* Zero-copy input: returns a writable region of *LEN >= 1 bytes to read into, then
 * negio_conn_recv_done(conn, n) with the bytes actually stored (no other call in between).
 * Returns NULL (and *LEN = 0) after a fatal error (running out of memory is one), or after
 * negio_conn_feed_eof(). */
NEGIO_API uint8_t *negio_conn_recv_buf(negio_conn *conn, size_t *len);
/* Returns NEGIO_OK, NEGIO_ERR_INVALID (N larger than the region). */
NEGIO_API int negio_conn_recv_done(negio_conn *conn, size_t n);
/* The peer closed its side of the stream (EOF). If no protected close was received, the next
 * event is the fatal NEGIO_ERR_TRUNCATED. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_conn_feed_eof(negio_conn *conn);

/* Output for the wire: the next *LEN bytes to send (NULL and 0 when there are none), then
 * negio_conn_send_done(conn, n) with how many were written. Output produced before a fatal error
 * (for instance a handshake error token) remains available and should still be sent.
 * send_done returns NEGIO_OK, NEGIO_ERR_INVALID (N larger than what is pending). */
NEGIO_API const uint8_t *negio_conn_send_buf(negio_conn *conn, size_t *len);
NEGIO_API int negio_conn_send_done(negio_conn *conn, size_t n);
/* Output for an owner that keeps writes queued (a write already in flight): takes all pending
 * output as one block, *LEN bytes at *DATA, and returns the block, which stays valid until
 * negio_conn_send_release(block), also after negio_conn_del(). Output that fills at least half
 * of the connector's buffer is handed over without a copy (the connector goes on in a new
 * buffer); less is copied into a block of its own size, so that the memory held follows the
 * bytes. Returns NULL (*DATA NULL, *LEN 0) when nothing is pending or no memory is left: the
 * output then stays, for negio_conn_send_buf(). */
NEGIO_API void *negio_conn_send_take(negio_conn *conn, const uint8_t **data, size_t *len);
NEGIO_API void negio_conn_send_release(void *block);

/* Sends one application message of LEN bytes (0 allowed) at LEVEL (NEGIO_LEVEL_DEFAULT: the
 * configured default). Before completion the message is copied and queued; it goes out once
 * both sides' policies are known. A message larger than one frame is split.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_LEVEL (below the peer's minimum; not sent),
 * NEGIO_ERR_MSG_SIZE (over the message limit; not sent), NEGIO_ERR_STATE (after this side's
 * close, or after the peer's unless negio_config_set_half_close),
 * NEGIO_ERR_NOMEM, or the sticky fatal error (a GSS protection failure is fatal). */
NEGIO_API int negio_conn_write(negio_conn *conn, const void *data, size_t len, negio_level level);

/* Sends the protected close (with STATUS 0 for a normal close, non-zero to reject the peer, and
 * an optional short REASON) once the connection is established. Before that, it sends an
 * unprotected handshake error and ends the connector (the sticky error becomes
 * NEGIO_ERR_CLOSED; no further handshake step runs). No write is accepted afterwards.
 * NEGIO_PROFILE_NNS has no close message: see negio_config_set_profile() for what it does.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_STATE (already closed), NEGIO_ERR_NOMEM, or the
 * sticky error. */
NEGIO_API int negio_conn_close(negio_conn *conn, uint32_t status, const char *reason);

typedef enum negio_event_type {
    NEGIO_EV_NONE = 0,
    NEGIO_EV_ESTABLISHED = 1,  /* authentication complete and both policies agreed */
    NEGIO_EV_MESSAGE = 2,      /* a whole application message; see data, len, level */
    NEGIO_EV_CLOSED = 3,       /* the peer sent a verified protected close (status, reason);
                                  [MS-NNS]: the stream ended between messages */
    NEGIO_EV_ACKNOWLEDGED = 4, /* gss-sample profile, client: the server returned a verified MIC
                                  of the message in data/len (level: sign), or a NOOP when no
                                  MIC was asked for (level: none) */
} negio_event_type;

/* The caller's, filled whole by negio_conn_next_event(). Unlike the structs that begin with a size
 * field, it never grows within a SONAME: what a later release has to say about an event comes
 * through a function. */
typedef struct negio_event {
    negio_event_type type;
    negio_level level;   /* NEGIO_EV_MESSAGE: the level the message arrived at */
    const uint8_t *data; /* NEGIO_EV_MESSAGE: valid until the next call on the connector */
    size_t len;
    uint32_t status;    /* NEGIO_EV_CLOSED: the peer's status (0: normal close) */
    const char *reason; /* NEGIO_EV_CLOSED: the peer's reason text, possibly empty */
    unsigned want;      /* next_event returned 0: what the connector needs before it can go on,
                           as negio_conn_want() would say (NEGIO_WANT_READ: input; NEGIO_WANT_STEP:
                           a deferred step; NEGIO_WANT_WRITE: output waits; NEGIO_WANT_SHUTDOWN:
                           see there; 0: nothing more) */
} negio_event;

/* Processes buffered input and returns the next event: 1 with *EV filled, 0 when nothing more
 * can happen until more input arrives or a deferred step runs (EV->want then says which, as
 * negio_conn_want() does), or the
 * fatal error (sticky; returned again on every later call). After a NEGIO_EV_CLOSED event it
 * returns 0.
 * Returns 1, 0, NEGIO_ERR_INVALID, NEGIO_ERR_NOMEM, NEGIO_ERR_PROTOCOL, NEGIO_ERR_TOO_LARGE,
 * NEGIO_ERR_TRUNCATED, NEGIO_ERR_HANDSHAKE, NEGIO_ERR_PEER, NEGIO_ERR_POLICY,
 * NEGIO_ERR_DOWNGRADE, NEGIO_ERR_INTEGRITY, NEGIO_ERR_CREDENTIALS, NEGIO_ERR_CLOSED,
 * NEGIO_ERR_REJECTED, NEGIO_ERR_BINDING, and NEGIO_ERR_STATE (not fatal) while a
 * negio_conn_recv_buf() region is outstanding. */
NEGIO_API int negio_conn_next_event(negio_conn *conn, negio_event *ev);

#define NEGIO_WANT_READ 0x1u  /* more input is useful */
#define NEGIO_WANT_WRITE 0x2u /* negio_conn_send_buf() has bytes */
#define NEGIO_WANT_STEP 0x4u  /* a handshake step (may block on the KDC) is ready to run */
#define NEGIO_WANT_EVENT 0x8u /* buffered input may yield events: call next_event */
/* This side has closed and its stream has no close message (NEGIO_PROFILE_NNS under half-close):
 * once the output is sent, shut down the sending half of the transport (shutdown(SHUT_WR),
 * uv_shutdown), which the peer reads as this side's end, and go on reading until the peer's.
 * Set from negio_conn_close() until the conversation ends. */
#define NEGIO_WANT_SHUTDOWN 0x10u
/* What the connector is waiting for, as NEGIO_WANT_* bits (0 once closed or failed and drained). */
NEGIO_API unsigned negio_conn_want(const negio_conn *conn);

/* Runs the pending handshake step (gss_init_sec_context / gss_accept_sec_context; on a client,
 * also the explanation of the server's HANDSHAKE_ERROR, which ends in NEGIO_ERR_PEER). May block
 * on the network inside the mechanism or the explanation (KDC, DNS). Safe to call on another
 * thread if no other call is made on this connector meanwhile. Returns NEGIO_OK (also when no
 * step was pending), NEGIO_ERR_INVALID, or the sticky fatal error (NEGIO_ERR_HANDSHAKE,
 * NEGIO_ERR_CREDENTIALS, NEGIO_ERR_POLICY, NEGIO_ERR_PEER, ...). */
NEGIO_API int negio_conn_step(negio_conn *conn);

/* While the pending or running step is the explanation of the server's HANDSHAKE_ERROR (a
 * client's; that step ends in NEGIO_ERR_PEER): the reason the server gave, control characters
 * replaced ("" when it gave none). NULL otherwise, and for a NULL CONN. Unlike the other calls
 * it may be made while negio_conn_step() runs on another thread: it reads only what was fixed
 * before that step began. For an owner whose handshake deadline passes during that step (it may
 * wait on DNS and the KDC): the peer refused, whatever the step would still add (the engine
 * reports NEGIO_ERR_PEER then, not a timeout). The string belongs to the connector. */
NEGIO_API const char *negio_conn_peer_refusal(const negio_conn *conn);

/* Authentication facts, valid after NEGIO_EV_ESTABLISHED for the connector's lifetime (the
 * strings belong to the connector). Growable: see size in the conventions above. */
typedef struct negio_auth_info {
    uint32_t size;                  /* set by the caller (sizeof, or 0: the 0.2 layout); set by
                                       the library to the bytes it filled */
    negio_mech mech;                /* NEGIO_MECH_KERBEROS or NEGIO_MECH_NTLM: what won
                                       (NEGIO_MECH_NONE with NEGIO_TRANSPORT_TLS) */
    int negotiated;                 /* 1 if it was chosen through SPNEGO */
    const char *peer;               /* server: the client's principal; client: the target's name
                                       (NEGIO_TRANSPORT_TLS: tls_peer) */
    const char *local_name;         /* server: the local account the peer maps to (see
                                       negio_config_add_user_map), or NULL */
    int server_authenticated;       /* 1 for Kerberos with mutual authentication, or (client) for a
                                       TLS server certificate verified with its host name */
    unsigned flags;                 /* NEGIO_FLAG_* as granted */
    uint32_t lifetime;              /* seconds the context remains valid (0xffffffff: indefinite) */
    int delegated;                  /* server: the client delegated its credentials (identity.h) */
    negio_level peer_min_level;     /* the peer's announced minimum */
    negio_level peer_default_level; /* the peer's announced default */
    uint32_t peer_max_message;      /* the peer's announced message limit */
    int client_authenticated;       /* the client proved an identity: always with GSS-API; with
                                       NEGIO_TRANSPORT_TLS only by a verified client certificate */
    /* With a TLS transport (NULL / 0 otherwise): */
    const char *tls_version; /* "TLSv1.3" or "TLSv1.2" */
    const char *tls_cipher;  /* the cipher suite's IANA name */
    const char *tls_peer;    /* the subject of the peer's verified certificate, or NULL */
    int tls_peer_verified;   /* the peer's certificate verified (chain, and host for a client) */
    int channel_bound;       /* TLS_NEGOTIATE: the GSS context is bound to this TLS session */
} negio_auth_info;

/* Fills *INFO, whose size the caller sets: `negio_auth_info info = {.size = sizeof(info)};`.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_STATE (not established). */
NEGIO_API int negio_conn_auth_info(const negio_conn *conn, negio_auth_info *info);

/* The first fatal error and its detail text (never NULL; "" if none). negio_conn_error returns
 * 0 (none), the sticky fatal error, or NEGIO_ERR_INVALID (a NULL connector). */
NEGIO_API int negio_conn_error(const negio_conn *conn);
NEGIO_API const char *negio_conn_error_detail(const negio_conn *conn);
/* Returns 1 once established (both policies agreed) and not failed, else 0. */
NEGIO_API int negio_conn_is_established(const negio_conn *conn);
/* Bytes of application data queued inside the connector (not yet protected) plus bytes pending
 * for the wire. For flow control. */
NEGIO_API size_t negio_conn_pending_bytes(const negio_conn *conn);

#ifdef __cplusplus
}
#endif
#endif /* NEGIO_NEGIO_H */
