/*
 * negio engine — many connectors driven by libuv: a socket server and client ("connection
 * manager") on several loop threads, with handshake steps that may block run on a bounded
 * worker pool. A separate library (libnegio_uv) so that the connector never links libuv.
 *
 * Conventions (in addition to those of negio.h):
 *  - Every callback for one connection runs on that connection's loop thread, never two at once.
 *  - Callbacks do not nest across connections: no callback of one connection runs inside a
 *    callback of another. A write or close that a callback makes on another connection of its
 *    loop waits for that connection's own turn later in the same loop iteration, after the
 *    callback has returned (on another loop, it travels to that loop). Made on the connection
 *    whose callback is running, a write goes to that connection at once, after any still waiting.
 *  - negio_engine_write(), negio_engine_send(), negio_engine_close() and the reference calls are
 *    safe from any thread. Everything else must be called from the thread that owns the engine
 *    (the one that called negio_engine_new) unless said otherwise.
 *  - A connection handle stays valid while the engine holds it (until on_closed returns) and
 *    while the application holds a reference (negio_econn_ref / negio_econn_unref).
 *  - If a call returns an error, no callback is made for what it would have started.
 *  - SIGPIPE: the engine never changes how the process handles signals. libuv writes to
 *    sockets with write()/writev(), which raise SIGPIPE when the peer has reset the connection,
 *    so every thread the engine starts (loops, step workers, and libuv's resolver threads that
 *    they start) blocks SIGPIPE: there the signal stays pending and is never delivered, and the
 *    write fails with EPIPE, ending only that connection. A process that writes to sockets or
 *    pipes on its own threads must still handle SIGPIPE itself (ignore it, or use
 *    MSG_NOSIGNAL).
 */
#ifndef NEGIO_ENGINE_H
#define NEGIO_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "negio/negio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The engine's error codes, NEGIO_ERR_BUSY, NEGIO_ERR_ADDRESS and NEGIO_ERR_SYSTEM, are in the
 * one table of negio.h (range -20..-39). */

typedef struct negio_engine negio_engine;
typedef struct negio_econn negio_econn;

/* Why a connection ended (on_closed). */
typedef enum negio_close_reason {
    NEGIO_CLOSE_CLEAN = 1,     /* a verified protected close, in either direction */
    NEGIO_CLOSE_TRUNCATED = 2, /* the peer closed TCP without a protected close */
    NEGIO_CLOSE_TIMEOUT = 3,   /* the connect deadline (a client's), the handshake deadline or
                                  the idle timeout passed (a server's refusal still being
                                  explained at the deadline is NEGIO_CLOSE_ERROR with
                                  NEGIO_ERR_PEER: negio_conn_peer_refusal) */
    NEGIO_CLOSE_ERROR = 4,     /* a fatal error; see the code and detail */
    NEGIO_CLOSE_REFUSED = 5,   /* refused by on_accept or on_authenticated, or engine shutdown */
    NEGIO_CLOSE_EXPIRED = 6,   /* the security context ended (close_at_context_expiry) */
} negio_close_reason;

NEGIO_API const char *negio_close_reason_name(negio_close_reason reason);

typedef struct negio_engine_callbacks {
    /* Server: a TCP connection arrived from PEER. Return 0 to accept, non-zero to refuse. */
    int (*on_accept)(negio_engine *e, const struct sockaddr *peer, void *user);
    /* Both: the connection is authenticated and both policies agree. Return 0 to keep it; a
     * non-zero status rejects the peer (it receives a protected close with that status). INFO
     * is the library's own, valid during the call: info->size says how much of it there is
     * (fields beyond it are absent: a library older than the headers). */
    int (*on_authenticated)(negio_econn *c, const negio_auth_info *info, void *user);
    /* Both: one whole application message and the level it arrived at. DATA is valid during the
     * call only. */
    void (*on_message)(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user);
    /* Both: the connection ended; CODE is 0 or the NEGIO_ERR_* that ended it, DETAIL its text
     * (never NULL). The handle must not be used after this returns unless referenced. */
    void (*on_closed)(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user);
    /* Both (optional): the connection's queued output crossed the high-water mark (ABOVE=1) or
     * fell back under the low-water mark (ABOVE=0). */
    void (*on_backpressure)(negio_econn *c, int above, void *user);
    /* Client, gss-sample profile (optional): the server returned a verified MIC of the message
     * in DATA (LEVEL sign), or a NOOP where none was asked for (LEVEL none). */
    void (*on_acknowledged)(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                            void *user);
    /* Both (optional): a message that negio_engine_write/send accepted was not sent, because
     * the peer's POLICY, unknown when it was written (before establishment, or on another
     * thread as the POLICY arrived), forbids it: CODE is NEGIO_ERR_MSG_SIZE or NEGIO_ERR_LEVEL
     * (docs/PROTOCOL.md section 4.3), DATA the message (valid during the call only). The
     * connection stays up and later messages are sent. Without this callback such a message
     * ends the connection instead: the peer gets a protected CLOSE with status 107
     * (NEGIO_ERR_POLICY), and on_closed reports NEGIO_ERR_POLICY. */
    void (*on_write_failed)(negio_econn *c, int code, const uint8_t *data, size_t len,
                            negio_level level, void *user);
} negio_engine_callbacks;

/* Growable (the conventions of negio.h): set size = sizeof(negio_engine_options), or leave it 0
 * for the 0.2 layout. negio_engine_callbacks is embedded and cannot grow: a callback added later
 * is appended to negio_engine_options itself. */
typedef struct negio_engine_options {
    uint32_t size;                 /* sizeof(negio_engine_options), or 0: the 0.2 layout */
    unsigned loops;                /* I/O loop threads (0: one per CPU) */
    unsigned workers;              /* threads for blocking handshake steps (0: 4) */
    uint32_t handshake_timeout_ms; /* 0: 30000 */
    uint32_t idle_timeout_ms;      /* 0: none */
    unsigned max_connections;      /* accepting pauses at this many (0: 65536) */
    size_t high_water;             /* per-connection queued output that pauses reading and
                                      signals the application (0: 1 MiB) */
    size_t hard_limit;             /* all a connection holds for sending (negio_econn_queued:
                                      messages accepted and not yet framed, frames, bytes in
                                      write requests), from whatever thread it is written:
                                      a write that would pass it fails with NEGIO_ERR_BUSY, one
                                      longer than it with NEGIO_ERR_MSG_SIZE (0: 16 MiB) */
    uint32_t shutdown_timeout_ms;  /* graceful shutdown deadline, and again for the forced
                                      close after it (0: 5000) */
    /* Non-zero: an established connection is closed when its security context ends, that is
     * negio_auth_info.lifetime seconds after establishment (a Kerberos initiator: the ticket's
     * end time; MIT's acceptor: that time plus the allowed clock skew, 5 minutes by default;
     * NTLM contexts never end), with a protected CLOSE of status NEGIO_STATUS_EXPIRED (the
     * peer reports NEGIO_ERR_REJECTED) and NEGIO_CLOSE_EXPIRED here. Zero (the default):
     * connections outlive their tickets, as MIT's per-message calls keep working after the end
     * time; a client then needs a valid ticket only to open a new connection. */
    int close_at_context_expiry;
    negio_engine_callbacks callbacks;
    void *user;
    /* Appended after 0.2 (set size = sizeof to use them). */
    /* Both (optional): a connection whose configuration has negio_config_set_half_close got
     * the peer's CLOSE (status 0): the peer sends nothing more, and this side may go on writing
     * until it calls negio_engine_close(C, 0), which sends its own CLOSE and ends the
     * connection cleanly (on_closed, NEGIO_CLOSE_CLEAN). Not called for a relayed connection:
     * the relay shuts down its socket's sending half instead. NEGIO_PROFILE_NNS, which has no
     * close message: the peer's FIN between messages stands for its CLOSE, and this side's
     * close is the FIN of the socket's sending half (NEGIO_WANT_SHUTDOWN), after which the
     * engine reads on until the peer's FIN. */
    void (*on_peer_closed)(negio_econn *c, void *user);
} negio_engine_options;

/* Creates an engine and starts its loop and worker threads. OPTS is copied (its first
 * opts->size bytes). On failure nothing is left running or allocated.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a size the conventions of negio.h refuse),
 * NEGIO_ERR_NOMEM, NEGIO_ERR_SYSTEM (an event loop or a
 * thread could not be created). */
NEGIO_API int negio_engine_new(negio_engine **out, const negio_engine_options *opts);

/* Listens on ADDR ("127.0.0.1:7000", "[::1]:7000", ":7000" for all addresses, port 0 for any);
 * every accepted connection gets a server connector made from CFG (copied). *PORT (if not NULL)
 * receives the bound port. May be called more than once. When the process runs out of
 * descriptors (or the kernel of memory for sockets), the listener closes the connections
 * waiting at once (their clients see the connection closed), pauses accepting for 20 ms
 * doubling up to 1 s, and accepts again as soon as it can; it says so once per episode, and
 * once when it ends, through CFG's log function (negio_config_set_log).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a CFG that negio_conn_new refuses, such as
 * NEGIO_PROFILE_NNS inside TLS), NEGIO_ERR_ADDRESS (cannot bind or listen there),
 * NEGIO_ERR_NOMEM, NEGIO_ERR_STATE, NEGIO_ERR_SYSTEM (no socket, or a socket call failed). */
NEGIO_API int negio_engine_listen(negio_engine *e, const char *addr, const negio_config *cfg,
                                  uint16_t *port);

/* What a listener does beyond negio_engine_listen (growable: set size = sizeof). */
typedef struct negio_listen_options {
    uint32_t size;
    /* PROXY protocol (v1 or v2, as HAProxy sends it) before negio's bytes, from these
     * sources only: addresses or CIDR blocks separated by commas or spaces ("10.0.0.0/8,
     * 127.0.0.1, ::1/128"), or NULL for none. A connection from a listed source must begin
     * with a PROXY header: its source address becomes negio_econn_peer_addr (a LOCAL command,
     * a health check, keeps the real one) and the balancer's is negio_econn_via_addr. A PROXY
     * header from any other source is refused (NEGIO_ERR_PROTOCOL, "a PROXY protocol header
     * from ..."): a client cannot claim another address. Headers over 1024 bytes of addresses
     * and TLVs, and malformed ones, are NEGIO_ERR_PROTOCOL (a version 1 line must be exactly as
     * the specification writes it: single spaces, both addresses in the protocol's family,
     * ports 0..65535 without a heading zero). An IPv4 source also matches the IPv6 blocks in
     * its mapped form, as a dual-stack listener sees it: "::ffff:10.0.0.0/104" is 10.0.0.0/8,
     * "::/0" every source. */
    const char *accept_proxy_from;
} negio_listen_options;

/* negio_engine_listen with OPTS (NULL: none). The returned *PORT also names the listener for
 * negio_engine_listen_reconfigure.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a size the conventions of negio.h refuse, or an
 * accept_proxy_from that is not a list of addresses and CIDR blocks), NEGIO_ERR_ADDRESS,
 * NEGIO_ERR_NOMEM, NEGIO_ERR_STATE, NEGIO_ERR_SYSTEM. */
NEGIO_API int negio_engine_listen_with(negio_engine *e, const char *addr, const negio_config *cfg,
                                       const negio_listen_options *opts, uint16_t *port);
/* Replaces the configuration (copied) that connections accepted from now on by the listener
 * bound to PORT are made with, e.g. to take up a new keytab or access rules on a reload;
 * connections already accepted keep theirs. Safe from any thread.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (no listener on PORT, a configuration that is not a
 * server's, or one that negio_conn_new refuses), NEGIO_ERR_NOMEM. */
NEGIO_API int negio_engine_listen_reconfigure(negio_engine *e, uint16_t port,
                                              const negio_config *cfg);

/* Opens a client connection to HOST:PORT with a client connector made from CFG (copied).
 * CONN_USER is returned by negio_econn_user(). *OUT (if not NULL) receives a handle that the
 * caller owns one reference to (release it with negio_econn_unref). Failures to resolve or
 * connect are reported through on_closed: NEGIO_CLOSE_ERROR with NEGIO_ERR_ADDRESS (or
 * NEGIO_ERR_SYSTEM when the socket or its timer cannot be made), and the connect deadline of
 * negio_connect_options, 10 s here, as NEGIO_CLOSE_TIMEOUT. Safe from any thread.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a CFG that negio_conn_new refuses, such as
 * NEGIO_PROFILE_NNS inside TLS), NEGIO_ERR_NOMEM, NEGIO_ERR_STATE (shutting down). */
NEGIO_API int negio_engine_connect(negio_engine *e, const char *host, uint16_t port,
                                   const negio_config *cfg, void *conn_user, negio_econn **out);

/* What a client connection does beyond negio_engine_connect (growable: set size = sizeof). */
typedef struct negio_connect_options {
    uint32_t size;
    /* The TCP connection must be made within this many milliseconds of the call: the name
     * resolved and its addresses tried in turn (0: 10000). A server that drops SYNs (down, or
     * behind a firewall) would otherwise hold the connection for the kernel's SYN retries,
     * about two minutes on Linux. When it passes, on_closed reports NEGIO_CLOSE_TIMEOUT, code 0,
     * with the detail "connect to HOST:PORT did not complete within N ms". The handshake
     * deadline (handshake_timeout_ms) starts once the TCP connection is made. */
    uint32_t connect_timeout_ms;
} negio_connect_options;

/* negio_engine_connect with OPTS (NULL: the defaults).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a size the conventions of negio.h refuse),
 * NEGIO_ERR_NOMEM, NEGIO_ERR_STATE (shutting down). */
NEGIO_API int negio_engine_connect_with(negio_engine *e, const char *host, uint16_t port,
                                        const negio_config *cfg, const negio_connect_options *opts,
                                        void *conn_user, negio_econn **out);

/* Sends one message on C at its default level (write) or at an explicit LEVEL (send). Writes
 * keep their order per connection; made before authentication completes, they wait in the
 * engine and go out after on_authenticated returns (dropped if it rejects the peer). The
 * checks are the connector's own (negio_conn_write), made here from any thread: once
 * established, against the peer's announced POLICY as well. A refused message is not sent and
 * the connection stays up. A message written before the POLICY was known and refused by it
 * when its turn comes is reported through on_write_failed. Messages that reach the connection
 * after it started to close are not sent (on_closed reports the end). Safe from any thread.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: sign or seal on a NEGIO_TRANSPORT_TLS connection,
 * which has level none only), NEGIO_ERR_MSG_SIZE (over this side's max_message, the peer's
 * announced max_message, or hard_limit), NEGIO_ERR_LEVEL (below the peer's announced minimum),
 * NEGIO_ERR_BUSY (the connection holds its hard limit for sending), NEGIO_ERR_CLOSED (the
 * connection has ended or is closing), NEGIO_ERR_NOMEM. */
NEGIO_API int negio_engine_write(negio_econn *c, const void *data, size_t len);
NEGIO_API int negio_engine_send(negio_engine *e, negio_econn *c, const void *data, size_t len,
                                negio_level level);

/* Closes C: a protected close with STATUS (0 normal, non-zero rejection) once pending output is
 * flushed ([MS-NNS]: see negio_config_set_profile in negio.h). Safe from any thread. Returns
 * NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_CLOSED, NEGIO_ERR_NOMEM (no memory to pass the close to
 * the connection's loop; nothing changed). */
NEGIO_API int negio_engine_close(negio_econn *c, uint32_t status);

/* References to a connection handle; safe from any thread. */
NEGIO_API void negio_econn_ref(negio_econn *c);
NEGIO_API void negio_econn_unref(negio_econn *c);
NEGIO_API void *negio_econn_user(const negio_econn *c);
NEGIO_API void negio_econn_set_user(negio_econn *c, void *user);
/* The peer's address (valid for the handle's lifetime); family AF_UNSPEC if the peer was
 * already gone when the connection started. */
NEGIO_API const struct sockaddr *negio_econn_peer_addr(const negio_econn *c);
/* Output not yet handed to the socket: application writes accepted and not yet framed, frames
 * in the connector and in write requests. The quantity that flow control (high_water) and
 * hard_limit bound. Safe from any thread. */
NEGIO_API size_t negio_econn_queued(const negio_econn *c);
/* The facts of an authenticated connection, as negio_conn_auth_info() gives them (the caller
 * sets info->size); from its loop thread only (e.g. in callbacks).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (a NULL C or INFO, or a bad size), NEGIO_ERR_STATE. */
NEGIO_API int negio_econn_auth_info(const negio_econn *c, negio_auth_info *info);

/* The credentials the peer delegated (include/negio/identity.h), or NULL; from the connection's
 * loop thread only (e.g. in on_authenticated). Take a reference to keep them past the call. */
NEGIO_API negio_delegated *negio_econn_delegated(const negio_econn *c);

/* The address the TCP connection itself came from when the listener accepted a PROXY header
 * on it (negio_listen_options): the load balancer's; AF_UNSPEC otherwise. Valid for the
 * handle's lifetime, from the connection's loop thread (e.g. in callbacks). */
NEGIO_API const struct sockaddr *negio_econn_via_addr(const negio_econn *c);

/* The address of C's own socket on this host, into *OUT: for a connection a listener accepted,
 * the address it was accepted on (on a dual-stack listener, ":PORT", an IPv4 client's connection
 * has it in the mapped form ::ffff:a.b.c.d); for a client, the source address of its connect. A
 * PROXY header does not change it. From the connection's loop thread (e.g. in callbacks).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (a NULL C or OUT), NEGIO_ERR_STATE (no socket: a client
 * not yet connected, or a socket already closed; *OUT is then AF_UNSPEC). */
NEGIO_API int negio_econn_local_addr(const negio_econn *c, struct sockaddr_storage *out);

/* ---- Relays ---------------------------------------------------------------------------------
 * A relay joins a connection C and a plain TCP socket on C's loop: every message that arrives
 * on C is written to the socket, and what the socket reads goes to the peer as messages, each
 * direction in order, until both have ended. Made for tunnels (negio tunnel): a client that
 * accepts plain TCP and relays it over negio, a server that relays each authenticated
 * connection to a backend.
 *  - The socket is read only once C is established and while it is open for writing; each read
 *    becomes one message (at most `chunk` bytes) at C's default level. on_message is not called
 *    for a relayed connection.
 *  - Flow control end to end: while what C has not yet sent (negio_econn_queued) is over the
 *    engine's high_water, the socket is not read; while what the socket has not yet taken is
 *    over the relay's high_water, C is not read. So a relay holds about two high-water marks,
 *    one message and one frame, whatever the two peers do. on_backpressure is not called for a
 *    relayed connection.
 *  - Half-close: with negio_config_set_half_close on C's configuration, the end of the socket's
 *    input (FIN) becomes C's CLOSE after everything read before it, while messages from the
 *    peer still reach the socket; the peer's CLOSE becomes a shutdown of the socket's sending
 *    half after every message before it, while the socket is still read. The connection ends
 *    when both directions have. Without half-close, either end ends both. With
 *    NEGIO_PROFILE_NNS each CLOSE here is the FIN of that side's sending half of C's stream.
 *  - A clean end (both CLOSEs) shuts the socket down after every byte was written to it; any
 *    other end of C (an error, a truncation, a timeout, a rejection) resets the socket, so the
 *    program behind it never takes a cut stream for a complete one. A socket that fails (reset,
 *    refused, timed out), or a relay without memory for what it reads or must still write, ends
 *    C with a protected CLOSE of status `fail_status` whose reason says why, and on_closed
 *    reports NEGIO_CLOSE_ERROR with NEGIO_ERR_ADDRESS (connect), NEGIO_ERR_SYSTEM or
 *    NEGIO_ERR_NOMEM, the detail beginning "relay: ".
 *  - The idle timeout counts activity in both directions.
 * Attach the relay before C can deliver a message: in a callback of C (on_authenticated), or
 * from the thread that called negio_engine_connect right after it. */
typedef struct negio_relay_options {
    uint32_t size;               /* sizeof(negio_relay_options), or 0 (this layout) */
    size_t chunk;                /* the largest message made from one read (0: 64 KiB) */
    size_t high_water;           /* bytes the socket has not yet taken that pause reading C
                                    (0: the engine's high_water) */
    uint32_t connect_timeout_ms; /* negio_engine_relay_connect (0: 10000) */
    uint32_t fail_status;        /* the CLOSE status the peer gets when the socket cannot be
                                    reached or fails (0: NEGIO_STATUS_UNAVAILABLE) */
    const void *preamble;        /* written to the socket before anything else (copied), */
    size_t preamble_len;         /* e.g. a PROXY protocol header */
} negio_relay_options;

/* Relays C and the connected stream socket FD (any stream socket: TCP or Unix). On NEGIO_OK
 * the engine owns FD (closed with the relay, also when C has already ended); on an error the
 * caller keeps it. OPTS may be NULL. Safe from any thread.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a negative FD, a size the conventions of negio.h
 * refuse), NEGIO_ERR_STATE (C has a relay already, or has ended), NEGIO_ERR_NOMEM. */
NEGIO_API int negio_engine_relay(negio_econn *c, int fd, const negio_relay_options *opts);
/* Relays C and a new TCP connection to HOST:PORT, which the engine makes on C's loop (the name
 * resolved, each address tried, within connect_timeout_ms). Messages from the peer wait
 * (C is not read) until it is connected. Safe from any thread.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_STATE, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_engine_relay_connect(negio_econn *c, const char *host, uint16_t port,
                                         const negio_relay_options *opts);

/* A relay's counts (growable: the caller sets size). */
typedef struct negio_relay_stats {
    uint32_t size;
    uint64_t to_socket;   /* message bytes written to the socket (the preamble not counted) */
    uint64_t from_socket; /* bytes read from the socket and sent as messages */
    size_t held;          /* bytes held now for either direction: negio_econn_queued(C) and
                             what the socket has not taken */
    size_t held_max;      /* the most it ever held */
    int connected;        /* the socket was connected */
    int socket_eof;       /* the socket's peer ended its sending */
    int peer_closed;      /* the negio peer ended its sending (its CLOSE) */
} negio_relay_stats;

/* Fills *STATS for C's relay; from C's loop thread (in callbacks, on_closed included).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (a NULL or badly sized STATS), NEGIO_ERR_STATE (no
 * relay). */
NEGIO_API int negio_econn_relay_stats(const negio_econn *c, negio_relay_stats *stats);

/* Number of open connections (approximate while they change). Safe from any thread. */
NEGIO_API unsigned negio_engine_connections(const negio_engine *e);

/* Stops accepting, closes every connection gracefully (flush, protected close) within the
 * shutdown deadline, then force-closes what is left and waits as long again. Returns when all
 * connections are closed, or when that second deadline passes (an application callback that
 * has not returned holds a loop thread); calling it again waits again.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (a NULL engine), NEGIO_ERR_BUSY (connections were still
 * open). */
NEGIO_API int negio_engine_shutdown(negio_engine *e);
/* Shuts down if needed, stops the threads and frees the engine. A handshake step still blocked
 * inside GSS-API (an unreachable KDC) is waited for (the mechanism's own timeouts bound it), and
 * so is an application callback that has not returned. */
NEGIO_API void negio_engine_del(negio_engine *e);

#ifdef __cplusplus
}
#endif
#endif /* NEGIO_ENGINE_H */
