/* An adversarial TCP proxy for tests: a man in the middle between a negio client and server that
 * runs in a thread of the test process, listens on 127.0.0.1:0, parses negio frames in each
 * direction (docs/PROTOCOL.md section 3: an 8-byte header [version][type][level][flags][u32 BE
 * length], then the body) and applies scripted actions to chosen frames.
 *
 * A rule picks frames by connection (accept order), direction, frame type and occurrence; every
 * rule that matches a frame is applied to it, in the order the rules were added, so actions
 * compose (flip, then record, then duplicate...). The proxy never interprets a frame beyond its
 * header: it is the network attacker of the threat model, holding no keys.
 *
 * Bytes the proxy cannot parse as a frame (an announced length over 16 MiB, or a partial frame
 * at end of stream) are forwarded as they are. End of stream in one direction is passed on as a
 * FIN (shutdown) once everything before it has been written, so a receiver sees a clean end of
 * stream, never a reset, unless a peer itself reset its connection. */
#ifndef NEGIO_TEST_PROXY_H
#define NEGIO_TEST_PROXY_H

#include <stddef.h>
#include <stdint.h>

typedef struct proxy proxy;

typedef enum proxy_dir {
    PROXY_C2S = 0, /* client to server */
    PROXY_S2C = 1, /* server to client */
} proxy_dir;

/* Frame types (PROTOCOL.md 3.2), for rules. */
enum {
    PROXY_ANY_TYPE = 0,
    PROXY_HANDSHAKE = 1,
    PROXY_HS_ERROR = 2,
    PROXY_POLICY = 3,
    PROXY_DATA = 4,
    PROXY_CLOSE = 5,
};

typedef enum proxy_act {
    PROXY_PASS = 0,      /* forward unchanged (a no-op rule: useful to count frames) */
    PROXY_FRAGMENT,      /* forward in pieces GAP_US apart: one byte at a time (CUT 0) or
                            random pieces of 1..CUT bytes (seeded) */
    PROXY_DELAY,         /* hold the frame, and so everything behind it, for DELAY_MS */
    PROXY_DROP,          /* do not forward it */
    PROXY_DUPLICATE,     /* forward it twice (a replay in place) */
    PROXY_SWAP_NEXT,     /* hold it and forward it after the next frame of the same direction */
    PROXY_FLIP,          /* xor FLIP_XOR[i] into the byte at FLIP_OFF[i] (from the frame start,
                            header included; a negative offset counts from the end) */
    PROXY_INJECT_BEFORE, /* send BYTES (any bytes, e.g. a frame from proxy_frame_make) first */
    PROXY_INJECT_AFTER,  /* send BYTES right after the frame */
    PROXY_REPLACE,       /* send BYTES instead of the frame */
    PROXY_TRUNCATE,      /* forward the first KEEP bytes of the frame, then end both directions of
                            the connection (FIN to both peers; anything they send is discarded) */
    PROXY_CUT_BODY,      /* keep the first KEEP body bytes and rewrite the length to match */
    PROXY_SET_LENGTH,    /* rewrite the header's length to LENGTH; the body is forwarded as is */
    PROXY_RECORD,        /* copy the frame (as modified so far) into SLOT; forward it */
    PROXY_SPLICE,        /* send the frame recorded in SLOT (by any connection) instead */
    PROXY_REFLECT,       /* send the frame back to its sender instead of forwarding it */
    PROXY_EDIT,          /* EDIT(&data, &len, EDIT_USER) rewrites the frame (as modified so far) */
} proxy_act;

/* For PROXY_EDIT: *DATA (heap, *LEN bytes) is the whole frame, header included; the function may
 * change it in place or replace the buffer (realloc, or free and malloc) and its length. It runs
 * on the proxy's thread, with the proxy's lock held: what it records in USER may be read after
 * proxy_stop(). */
typedef void (*proxy_edit_fn)(uint8_t **data, size_t *len, void *user);

#define PROXY_MAX_FLIPS 8
#define PROXY_SLOTS 8

typedef struct proxy_rule {
    int conn; /* connection index, 0 for the first one accepted; -1: every connection */
    proxy_dir dir;
    int type; /* PROXY_HANDSHAKE.. or PROXY_ANY_TYPE */
    int nth;  /* 0-based occurrence among the frames of DIR (of TYPE); -1: every one */
    proxy_act act;
    uint32_t delay_ms; /* DELAY */
    uint32_t gap_us;   /* FRAGMENT */
    uint32_t cut;      /* FRAGMENT */
    long keep;         /* TRUNCATE: bytes of the frame; CUT_BODY: bytes of the body; negative:
                          that many fewer than the whole */
    uint32_t length;   /* SET_LENGTH */
    int nflips;        /* FLIP */
    long flip_off[PROXY_MAX_FLIPS];
    uint8_t flip_xor[PROXY_MAX_FLIPS];
    const uint8_t *bytes; /* INJECT_*, REPLACE: copied by proxy_add_rule */
    size_t nbytes;
    int slot;           /* RECORD, SPLICE */
    proxy_edit_fn edit; /* EDIT */
    void *edit_user;
} proxy_rule;

/* Starts a proxy in front of 127.0.0.1:UPSTREAM_PORT; *PORT receives the port to connect to.
 * SEED makes the random cuts reproducible. Returns 0, or -1 (errno set). */
int proxy_start(proxy **out, uint16_t upstream_port, unsigned seed, uint16_t *port);
/* Stops the thread, closes every socket and frees the proxy. */
void proxy_stop(proxy *p);

/* Adds a rule (copied); it applies to frames parsed from now on. Returns its id (>= 0). */
int proxy_add_rule(proxy *p, const proxy_rule *rule);
/* How many frames rule ID has been applied to. */
int proxy_fired(proxy *p, int id);

/* Connections accepted so far. */
int proxy_connections(proxy *p);
/* The local port of connection CONN's socket to the server (the server sees it as the peer's
 * port), or 0 if not connected yet. */
uint16_t proxy_upstream_port(proxy *p, int conn);
/* Frames parsed so far from direction DIR of connection CONN (as received, before any action). */
int proxy_frame_count(proxy *p, int conn, proxy_dir dir);
/* A copy of the Nth of those frames, header included (caller frees), or NULL. */
uint8_t *proxy_frame_copy(proxy *p, int conn, proxy_dir dir, int n, size_t *len);
/* 1 once both directions of connection CONN have ended and its sockets are closed. */
int proxy_conn_done(proxy *p, int conn);

/* Builds a frame: the 8-byte header (version 2) and BODY (caller frees). */
uint8_t *proxy_frame_make(uint8_t type, uint8_t level, uint8_t flags, const void *body,
                          size_t nbody, size_t *len);

#endif
