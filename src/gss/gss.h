/* The GSS-API provider: credentials, the context loop, per-message protection and the facts of
 * an established context. Every function writes a human-readable cause into DETAIL (size
 * NEGIO__DETAIL_MAX) when it fails. */
#ifndef NEGIO_GSS_GSS_H
#define NEGIO_GSS_GSS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/config.h"

typedef struct negio__gss negio__gss;

/* A configuration's shared credentials (held by negio_config.creds, shared by its copies). */
typedef struct negio__cred_cache negio__cred_cache;
negio__cred_cache *negio__cred_cache_new(void);
void negio__cred_cache_ref(negio__cred_cache *cc);
void negio__cred_cache_unref(negio__cred_cache *cc);

/* A provider for a connector's configuration CFG (its own copy, alive as long as the provider).
 * A client given DELEGATED (a credential another connection received, negio__delegated_cred;
 * borrowed: it must outlive the provider) authenticates with it, over Kerberos. */
int negio__gss_new(negio__gss **out, const negio_config *cfg, void *delegated, char *detail);
void negio__gss_del(negio__gss *g);

/* A copy of G's established context for CFG (the clone's own configuration): same keys, same
 * sequence state, same facts; no credentials, delegation or channel bindings (only the handshake
 * uses them). The first clone exports G's context (gss_export_sec_context), which takes it from
 * G: G then only serves as the template of further clones (each imports the exported token) and
 * fails every protection call. For the fuzzing fixture that needs a fresh copy of one genuine
 * context per input (tests/fuzz/fuzz_established.c); NEGIO_ERR_INVALID when the mechanism cannot
 * export or import. A context on the Kerberos fast path is copied as the fast path's keys and
 * sequence state instead (no GSS-API call), and G likewise protects nothing once copied. */
int negio__gss_clone(negio__gss **out, negio__gss *g, const negio_config *cfg, char *detail);

/* Channel bindings for every later context call (application data only, RFC 5056). */
#define NEGIO__CB_MAX 96
void negio__gss_set_bindings(negio__gss *g, const uint8_t *data, size_t len);

/* One context step on IN (NULL/0 for the client's first call). Appends the output token (if any)
 * to OUT, also when the GSS call fails, so that an error token can still reach the peer; but not
 * when the call succeeded and a check of this side's then refused the result. *COMPLETE is set
 * once the context is established and every policy check on it passed. */
int negio__gss_step(negio__gss *g, const uint8_t *in, size_t in_len, negio__buf *out, int *complete,
                    char *detail);

/* Gives a client's context the peer's error token, to learn the mechanism's own reason, which it
 * writes into DETAIL after what the report means in words (REASON is the report's text: whether
 * the server failed or refused); DETAIL is "" when there is nothing to say (a server, no context
 * yet or a complete one, an empty token, no error from the mechanism, no words). It has no
 * result: the connection fails with NEGIO_ERR_PEER either way. */
void negio__gss_peer_error(negio__gss *g, const uint8_t *tok, size_t len, const char *reason,
                           char *detail);

/* Appends a MIC over HEAD || BODY (HEAD may be empty: then TMP is not used). For Kerberos the
 * MIC covers the pieces where they are (gss_get_mic_iov) and is made in place in OUT; other
 * mechanisms get the pieces joined in TMP first (a MIC covers what the wire carries in the
 * clear: TMP can be a buffer that is not wiped). Both forms give the same token (RFC 4121
 * section 4.2.6.1). */
int negio__gss_sign(negio__gss *g, const uint8_t *head, size_t hlen, const uint8_t *body,
                    size_t blen, negio__buf *out, negio__buf *tmp, char *detail);
/* The shortest MIC of any supported mechanism. */
#define NEGIO__MIN_MIC 16
/* Verifies MIC over HEAD || BODY, as negio__gss_sign makes it: only an exact GSS_S_COMPLETE
 * passes; a MIC shorter than NEGIO__MIN_MIC never reaches the mechanism. */
int negio__gss_verify(negio__gss *g, const uint8_t *head, size_t hlen, const uint8_t *body,
                      size_t blen, const uint8_t *mic, size_t mic_len, negio__buf *tmp,
                      char *detail);
/* Whether negio__gss_sign and negio__gss_verify join a HEAD and BODY in TMP. */
int negio__gss_mic_joins(const negio__gss *g);
#ifdef NEGIO_TEST_HOOKS
/* The test build only (negio_hook_static, tests/CMakeLists.txt): non-zero makes every MIC of the
 * process go through the joined form (to show both are the same on the wire). */
extern _Atomic int negio__gss_no_iov;
/* Non-zero makes an [MS-NNS] client ask for neither replay nor sequence detection, as .NET's
 * client on Linux does: the order of a Kerberos stream is then the profile's own check. */
extern _Atomic int negio__gss_nns_unordered;
/* Non-zero makes the Kerberos fast path fail to engage once a context is complete, as a lucid
 * export that MIT refuses would. */
extern _Atomic int negio__gss_fast_fails;
#endif
/* Appends the wrap token of MSG, with confidentiality if CONF_REQ (then required). */
int negio__gss_wrap(negio__gss *g, int conf_req, const uint8_t *msg, size_t len, negio__buf *out,
                    char *detail);
/* Unwraps TOKEN (exact GSS_S_COMPLETE required) and reports whether it was encrypted. */
int negio__gss_unwrap(negio__gss *g, const uint8_t *tok, size_t len, uint8_t **plain,
                      size_t *plain_len, void **handle, int *conf_state, char *detail);
/* Appends the wrap token of MSG with confidentiality. */
int negio__gss_seal(negio__gss *g, const uint8_t *msg, size_t len, negio__buf *out, char *detail);
/* Unwraps TOKEN into *PLAIN (released with negio__gss_release): exact GSS_S_COMPLETE and
 * confidentiality are required. */
int negio__gss_unseal(negio__gss *g, const uint8_t *tok, size_t len, uint8_t **plain,
                      size_t *plain_len, void **handle, char *detail);
/* Wipes and releases an unwrapped plaintext, and sets *HANDLE to NULL. The first one outstanding
 * lives in G itself (no allocation per message): release it before negio__gss_del(G). */
void negio__gss_release(void **handle);

/* Server: the credential the client delegated, or NULL; the caller owns it from then on and
 * gives it back with negio__gss_cred_release (src/identity/delegated.c wraps it). */
void *negio__gss_take_delegated(negio__gss *g);
/* Releases a credential handed out by the provider, and sets *CRED to NULL. */
void negio__gss_cred_release(void **cred);
/* Server: the local account name the realm's rules (krb5.conf auth_to_local) give the peer, in
 * *OUT (negio__free it), or NULL when no rule does. 0 or NEGIO_ERR_NOMEM. */
int negio__gss_localname(const negio__gss *g, char **out);
/* Whether the peer's name held NUL or control characters (shown as '?'): it maps to nothing. */
int negio__gss_peer_unsafe(const negio__gss *g);

/* The length of this context's MIC tokens (Kerberos: gss_get_mic_iov_length, which uses no
 * sequence number; NTLM: 16), in *LEN. 0, or NEGIO_ERR_INTEGRITY with DETAIL. */
int negio__gss_mic_length(negio__gss *g, size_t *len, char *detail);
/* Kerberos on the fast path: the sequence number the peer's first token must carry, which the
 * context's keys came with (the peer's initial number from the AP-REQ or AP-REP), in *SEQ: 1. 0
 * when this side cannot know it (NTLM, or MIT's path, which keeps it to itself). */
int negio__gss_recv_seq_first(const negio__gss *g, uint64_t *seq);
/* The Windows status ([MS-ERREF] 2.1 HRESULT, SSPI's SEC_E_*) that says why the last context step
 * failed, as SSPI would: for a [MS-NNS] HandshakeError. 0 when no step failed. */
uint32_t negio__gss_windows_status(const negio__gss *g);

/* Whether the established context negotiated confidentiality. */
int negio__gss_has_conf(const negio__gss *g);

/* The facts of the established context (mechanism, peer, flags, lifetime; not the local name or
 * delegation, which the connector holds); strings stay owned by G. */
void negio__gss_info(const negio__gss *g, negio_auth_info *info);

#endif
