/*
 * negio server, in parts: server.c (the options and the run: start-up, waiting for a signal,
 * shutdown), server_events.c (the engine's callbacks and the event lines they print),
 * server_files.c (--files, with --impersonate) and server_forward.c (--forward).
 *
 * Threads: the engine calls back on several loop threads, each connection always on the same
 * one. Per-connection state hangs off the connection (negio_econn_set_user) and is only touched
 * on its thread, except a forward's link, which both of its connections share under a mutex.
 * Impersonation switches the loop thread alone, around one file operation, and switches back.
 */
#ifndef NEGIO_CLI_SERVER_H
#define NEGIO_CLI_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "negio/engine.h"
#include "negio/identity.h"

/* The running server: what the callbacks need, set up before the engine starts. */
struct server {
    negio_engine *engine;
    negio_transport transport; /* --tls, --tls-negotiate */
    int json, echo;
    int files_fd; /* --files: the directory, or -1 */
    int impersonate;
    negio_identity_policy policy; /* --impersonate: who may be acted as */
    const char *forward;          /* --forward HOST:PORT as given, or NULL */
    char fwd_host[256];
    uint16_t fwd_port;
    negio_config *fwd_cfg;  /* --forward: the onward client configuration, no credentials */
    pthread_mutex_t out_mu; /* callbacks run on several loop threads: one line at a time */
};

/* Connections carry a struct client (accepted) or a struct link (made by --forward) as their
 * user pointer; both start with their kind. */
enum conn_kind { CONN_CLIENT = 1, CONN_BACKEND = 2 };

/* The CLOSE status with which --echo ends a connection whose message it cannot send back: the
 * client's own policy forbids the level (or size) the message came at (negio.1, --echo). */
#define SERVER_STATUS_NO_ECHO 1

/* An accepted connection, from on_authenticated to on_closed. */
struct client {
    enum conn_kind kind;
    char *peer;
    negio_user *user;  /* --impersonate: the local account requests run as */
    char *refusal;     /* --impersonate: why there is none */
    struct link *link; /* --forward: NULL if the client delegated nothing */
};

struct link;

/* ---- server_events.c ---- */

/* The engine's callbacks (user: the struct server). */
int server_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user);
void server_on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user);
void server_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user);
/* "ADDR:PORT" of C's peer, "[ADDR]:PORT" for IPv6. */
void server_remote(negio_econn *c, char *out, size_t cap);
/* Starts reporting EVENT: takes the output lock and, with --json, begins its object in W with
 * "event" and "remote" (REMOTE may be NULL). Returns whether the output is JSON; the caller
 * adds members or prints a line, then calls server_event_end(). */
int server_event_begin(struct server *s, json_writer *w, const char *event, const char *remote);
/* Ends the JSON object (if any) and its line, flushes, and releases the output lock. */
void server_event_end(struct server *s, json_writer *w);
/* Why a connection ended, in an event begun with server_event_begin(): the members reason, error
 * and detail (JSON), or ", REASON[, ERROR][: DETAIL]" and the end of the line. ERROR may be
 * NULL, DETAIL NULL or empty. */
void server_event_why(json_writer *w, int json, const char *reason, const char *error,
                      const char *detail);
/* S quoted for human-readable output (NULL as null). */
void server_print_quoted(const char *s);
/* Sends LEN bytes to C at LEVEL (NEGIO_LEVEL_DEFAULT: the --protect level). A connection that
 * has ended meanwhile is not an error worth reporting. */
void server_send(struct server *s, negio_econn *c, negio_level level, const void *data, size_t len);
/* Sends a formatted reply at LEVEL. */
void server_reply(struct server *s, negio_econn *c, negio_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- server_files.c ---- */

/* --impersonate: the account the peer maps to, under the policy, or why there is none (in
 * CL->refusal). Returns 0, or -1 when out of memory. */
int server_find_user(struct server *s, struct client *cl, const negio_auth_info *info);
/* A --files request ("write NAME TEXT" or "read NAME") from CL, answered at LEVEL. */
void server_file_request(struct server *s, negio_econn *c, struct client *cl, const uint8_t *data,
                         size_t len, negio_level level);
/* --impersonate: whether this process may switch identities at all. Returns 0, or -1 after
 * printing why not. */
int server_check_impersonation(void);

/* ---- server_forward.c ---- */

/* The onward connections' configuration for the backend service SPN; the credentials are added
 * per client. Returns 0 or the library's error. */
int server_forward_config(negio_config **out, const char *spn, negio_level protect,
                          negio_level min);
/* Opens the backend connection for client C with the credentials D it delegated. Returns 0,
 * or -1 when out of memory (then the client is refused). */
int server_link_start(struct server *s, negio_econn *c, struct client *cl, negio_delegated *d);
/* A client's request: on to the backend, its level kept for the reply. */
void server_forward_request(struct server *s, negio_econn *c, struct client *cl,
                            const uint8_t *data, size_t len, negio_level level);
/* The client's connection ended: closes the backend connection and drops the client's
 * reference to L. */
void server_link_end(struct link *l);
/* The backend connection's callbacks. */
int server_backend_authenticated(struct server *s, struct link *l, const negio_auth_info *info);
void server_backend_message(struct server *s, struct link *l, const uint8_t *data, size_t len);
void server_backend_closed(struct server *s, struct link *l, negio_close_reason reason, int code,
                           const char *detail);

#endif /* NEGIO_CLI_SERVER_H */
