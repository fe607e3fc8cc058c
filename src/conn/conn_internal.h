/* The connector's state and the interface between its core (conn.c: buffers, transports, the
 * handshake steps, the application's calls) and its wire profiles (native.c: negio's protocol,
 * docs/PROTOCOL.md; sample.c: MIT's gss-sample programs, its appendix A; nns.c: [MS-NNS], .NET's
 * NegotiateStream, its appendix C). A profile turns tokens, messages and failures into bytes in
 * `out` and parses `in`; the core never sees a frame. */
#ifndef NEGIO_CONN_INTERNAL_H
#define NEGIO_CONN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "conn/conn.h"
#include "conn/write_check.h"
#include "gss/gss.h"
#include "identity/identity.h"
#include "negio/identity.h"
#include "tls/tls.h"
#include "wire/frame.h"
#include "wire/transcript.h"

#define MIN_TOKEN 16 /* the shortest MIC or wrap header of any supported mechanism */

typedef struct negio__profile negio__profile;

/* Where this side's conversation stands (the stream's own facts, such as eof, a close sent or
 * received, are kept beside it). */
enum negio__phase {
    PHASE_HANDSHAKE,   /* this side's context is not complete */
    PHASE_COMPLETE,    /* it is; the peer's POLICY is not verified yet */
    PHASE_ESTABLISHED, /* both: messages may flow */
};

#define POLICY_LEN (16 + NEGIO__TRANSCRIPT_LEN)
#define POLICY_VERSION 2
/* The largest body of a protected POLICY or CLOSE: a MIC length, the mechanism's overhead (the
 * room a sender keeps in every frame) and the payload (PROTOCOL.md section 3.5). */
#define CONTROL_BODY_MAX(payload) (4 + NEGIO__FRAME_OVERHEAD + (payload))
/* The receive region (negio_conn_recv_buf): RECV_CHUNK at first; doubled, up to RECV_CHUNK_MAX,
 * after every read that filled at least a region, so that a busy stream is read in large pieces
 * and the partial frame at the end of each read (moved to the front of the buffer when room runs
 * out) is moved rarely; given back when the stream has quietened (RECV_QUIET small reads in a
 * row, nothing unread), so that an idle connection does not keep what a burst made it grow to. */
#define RECV_CHUNK 16384
#define RECV_CHUNK_MAX (64 * 1024)
#define RECV_QUIET 4

/* The connector: framing, accumulation, the handshake conversation, policy exchange and
 * per-message protection (docs/PROTOCOL.md). Input is parsed lazily in negio_conn_next_event()
 * so that a message can be handed out straight from the input buffer. */
struct negio_conn {
    negio_config cfg;
    negio__gss *gss;
    char *local_name;           /* server: the peer's local account (src/identity/map.c) */
    negio_delegated *delegated; /* server: what the client delegated (src/identity) */
    int err;
    char detail[NEGIO__DETAIL_MAX];

    negio__buf in;         /* received, unparsed bytes */
    size_t in_hold;        /* bytes of IN handed out in the last event, consumed on the next call */
    size_t recv_granted;   /* size of the region last returned by negio_conn_recv_buf() */
    size_t recv_chunk;     /* the least free room that region has (RECV_CHUNK ... RECV_CHUNK_MAX) */
    unsigned recv_small;   /* reads in a row that brought less than RECV_CHUNK / 4 */
    negio__buf out;        /* bytes for the wire */
    negio__buf queue;      /* writes before establishment: [level u8][len u32][data] */
    size_t hs_hold;        /* the HANDSHAKE frame (or gss-sample context token) at the front of
                              IN whose token waits for a step: kept where it arrived, no copy */
    size_t hs_at;          /* where its token starts: after the 8-byte header (5 in gss-sample) */
    negio__transcript *ts; /* the handshake transcript being hashed (transcript.h) */
    uint8_t transcript[NEGIO__TRANSCRIPT_LEN]; /* its hash, from the context's completion */
    negio__buf reasm;                          /* a message arriving in several DATA frames */
    negio__buf scratch;                        /* protected header + payload for wrap input */
    negio__buf joined; /* protected header + payload for a MIC where the mechanism needs them
                          in one piece (NTLM): bytes the wire carries in the clear, not wiped */
    void *plain;       /* the unwrapped buffer handed out in the last event */
    int reasm_level;
    int reasm_active;

    int step_pending;
    int peer_error_held; /* the step pending is the profile's held_error (the frame at hs_hold) */
    /* that report's reason, printable, set with peer_error_held on the parsing thread and never
     * changed after: what the engine reports if the step explaining it outlives the handshake
     * deadline (negio_conn_peer_refusal) */
    char held_reason[NEGIO__REASON_MAX + 1];
    int hs_error_sent;
    int peer_policy_seen; /* the peer sent POLICY: its context is complete, it can verify ours */
    int early_input;      /* bytes arrived at a client before it sent its first token */
    const negio__profile *profile; /* the wire profile: native.c, sample.c or nns.c */
    int sample_started;            /* server: the opening NOOP|CONTEXT_NEXT was received */
    /* one-level profiles (nns.c): the protection of every message, from the context's flags */
    negio_level stream_level;
    struct {
        int peer_done;  /* the peer's HandshakeDone arrived */
        int done_sent;  /* this side's HandshakeDone went out */
        int ntlm;       /* the context is NTLM's: a signed message is signature || plaintext */
        int data_seen;  /* a data message has arrived (at none: data) */
        int closing;    /* closed locally: NEGIO_EV_CLOSED is next */
        int rseq_known; /* Kerberos: the last received token's sequence number is in rseq */
        uint64_t rseq;
        uint64_t done_at; /* server: where its HandshakeDone starts, counted as out_taken */
    } nns;
    size_t sample_ack;      /* client: bytes of sample_sent handed out in the last event */
    negio__buf sample_sent; /* client: messages awaiting the server's MIC: [u32 len][bytes] */
    int received_any;
    enum negio__phase phase;
    int peer_policy; /* the peer's POLICY verified (its limits are in force) */
    int eof;
    int close_sent;
    int closed;
    /* this side's close ended its sending half, and the stream says so only by the transport's
     * FIN (a profile without a close message, under half-close): NEGIO_WANT_SHUTDOWN */
    int shut_send;
    uint64_t out_taken; /* bytes of OUT handed on: to the owner, or into TLS records */
    unsigned rounds;

    /* TLS transports: the wire is TLS; IN and OUT above hold the plaintext frames inside it */
    negio__tls *tls;
    negio__buf tin;  /* received TLS bytes, not yet decrypted */
    negio__buf tout; /* TLS bytes for the wire */
    int tls_ready;   /* the TLS handshake completed and its facts were applied */
    int plain_eof;   /* no more plaintext will come: close_notify, or the wire ended */
    int tls_cut;     /* the wire ended without close_notify */
    uint8_t cb[NEGIO__TLS_CB_MAX]; /* TLS_NEGOTIATE: the channel bindings of the TLS session */
    size_t cb_len;

    negio_level peer_min;
    negio_level peer_default;
    uint32_t peer_max_frame;
    uint32_t peer_max_message;
};

/* What a wire profile does for the core. Every function reports its own failures through
 * negio__conn_fail; none is called after a fatal error. */
struct negio__profile {
    /* Parses one unit of input if a whole one is buffered: 1 = event, 0 = consumed without an
     * event or nothing to parse (*PROGRESS says which), negative = fatal. */
    int (*parse_one)(negio_conn *c, negio_event *ev, int *progress);
    /* A whole unit is buffered after the last event's (or one its header already refuses). */
    int (*unit_ready)(const negio_conn *c);
    /* This side's context token; FLAGS: NEGIO__TOKEN_FIRST (the client's first),
     * NEGIO__TOKEN_LAST (the step that made it completed the context; on_complete follows). 0 or
     * a negative code (the core reports it, unless the profile already failed the connector). */
    int (*put_token)(negio_conn *c, const uint8_t *tok, size_t len, unsigned flags);
    /* Before the peer can verify a protected frame: why this side gives up, with the
     * mechanism's error token if any. Best effort. */
    void (*put_error)(negio_conn *c, const uint8_t *tok, size_t len, const char *reason);
    /* The step for the peer's error report that parse_one held at hs_hold instead of explaining
     * it: its words may need DNS or the KDC (native.c). Fails the connector. */
    int (*held_error)(negio_conn *c);
    /* This side's context is complete (the policy exchange, or what stands in for it). */
    int (*on_complete)(negio_conn *c);
    /* One application message, checked already. */
    int (*put_message)(negio_conn *c, const uint8_t *data, size_t len, negio_level level);
    /* The largest message this side may write at any time, the peer's limits aside; NULL: the
     * configuration's max_message. */
    uint32_t (*max_message)(const negio_conn *c);
    /* A local close once established. */
    int (*close)(negio_conn *c, uint32_t status, const char *reason);
    /* A fatal error of this side's: tell the peer why, if the profile can and the peer can
     * still hear it. */
    void (*report)(negio_conn *c, int code);
    int protected_close; /* the conversation ends with a protected close (TLS then closes) */
    int one_level;       /* every message goes at stream_level: no per-message level */
    /* no close message, but the end of each direction is the FIN of its sender's half of the
     * stream: under half-close, the peer's end between messages ends its direction only, and
     * this side's close sets shut_send */
    int fin_half_close;
};

#define NEGIO__TOKEN_FIRST 0x1u
#define NEGIO__TOKEN_LAST 0x2u

extern const negio__profile negio__profile_native, negio__profile_sample, negio__profile_nns;

/* Records the first fatal error (the detail given here, or already in c->detail), tells the peer
 * through the profile, and returns the code (conn.c). */
int negio__conn_fail(negio_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
