/* A network attacker between a negio client and server engine (tests/proxy/proxy.h), on every
 * mechanism path (kerberos, negotiate->kerberos, negotiate->ntlm, ntlm): every CHECKLIST case
 * that someone on the path can cause, over real loopback sockets.
 *
 * Each attack ends the connection with a clear error on the attacked side (the receiver of the
 * tampered stream: its on_closed reason and code are asserted), and nothing reaches on_message
 * on either side that the peer did not send: every delivered message is byte-for-byte one of the
 * genuine messages, in order, at the level it was sent at, and the attacked side delivers exactly
 * the genuine messages that came before the attack. Fragmentation and delay deliver everything
 * intact. Every rule is checked to have fired, so an attack that silently missed its frame fails.
 *
 * The server echoes every message at its level, so that attacks on the server's frames reach the
 * client. Random choices are seeded. NEGIO_TEST_FILTER='protection_seal/ntlm' (a cmocka glob)
 * runs only the matching tests; NEGIO_TEST_VERBOSE=1 prints every case's outcome.
 *
 * Three tests guard bugs these tests found, now fixed (docs/SECURITY.md sections 8.4, 9); each
 * fails if its fix is taken out: raw_ntlm_negotiate_flags_cannot_be_downgraded_on_the_path
 * (a raw NTLM context downgraded on the path to 40-bit sealing keys is refused),
 * write_over_high_water_before_establishment_does_not_stall_the_handshake (writes made before
 * establishment do not pause reading) and listening_twice_on_one_engine_does_not_crash (loop 0
 * sets each listener up itself).
 *
 * Section 3b holds the attacks of issue 13 on the handshake, made with key-free rewrites of its
 * tokens (PROXY_EDIT): the Kerberos to NTLM downgrade, NTLM flag edits, changes to handshake
 * bytes no mechanism protects, and a forged HANDSHAKE_ERROR that crashed NTLM clients. Each of
 * them got through on commit 4f7be19 (authenticated both sides, or killed the client); each must
 * now be refused on every path where it applies. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine_support.h"
#include "proxy/proxy.h"
#include "support/tokens.h"

#define HDR 8
#define MAX_RECS 256
#define REC_MSGS 16
#define REC_KEEP 64
#define WAIT_MS 15000
#define NMSGS 3 /* genuine messages per attacked connection */

/* ---- what each side of each connection saw ----------------------------------------------- */

typedef struct msg_rec {
    negio_level level;
    size_t len;
    uint32_t sum;
} msg_rec;

typedef struct side_rec {
    uint16_t port; /* server side: the peer's port (the proxy's socket to the server) */
    int authenticated;
    negio_mech mech;
    int negotiated;
    int server_authenticated;
    int nmsgs;
    msg_rec msgs[REC_MSGS];
    char first[REC_KEEP]; /* printable start of the first unexpected message, for reports */
    int closed;
    negio_close_reason reason;
    int code;
    char detail[512];
} side_rec;

typedef struct world {
    negio_engine *e;
    int server;
    side_rec recs[MAX_RECS];
    int nrecs;
} world;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static world *srvw[3], *cli; /* servers by minimum level (one listen each: see
                                listening_twice_on_one_engine_does_not_crash) */
static proxy *live_proxy;
static uint16_t srv_port[3]; /* by the server's minimum level: none, sign, seal */
static test_path cur_path;
static char where[512];
static int verbose;

static void set_where(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_where(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof(where), fmt, ap);
    va_end(ap);
}

/* The record of connection C on world W: allocated at its first callback (server side). */
static side_rec *rec_of(world *w, negio_econn *c)
{
    side_rec *r = negio_econn_user(c);
    if (r != NULL)
        return r;
    pthread_mutex_lock(&lock);
    if (w->nrecs == MAX_RECS)
        abort();
    r = &w->recs[w->nrecs++];
    memset(r, 0, sizeof(*r));
    const struct sockaddr *sa = negio_econn_peer_addr(c);
    if (sa != NULL && sa->sa_family == AF_INET)
        r->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    pthread_mutex_unlock(&lock);
    negio_econn_set_user(c, r);
    return r;
}

static int cb_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    side_rec *r = rec_of(user, c);
    pthread_mutex_lock(&lock);
    r->authenticated = 1;
    r->mech = info->mech;
    r->negotiated = info->negotiated;
    r->server_authenticated = info->server_authenticated;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return 0;
}

static void cb_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    world *w = user;
    side_rec *r = rec_of(w, c);
    pthread_mutex_lock(&lock);
    if (r->nmsgs < REC_MSGS) {
        msg_rec *m = &r->msgs[r->nmsgs];
        m->level = level;
        m->len = len;
        m->sum = checksum_update(0, data, len);
    }
    r->nmsgs++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    if (w->server)
        (void)negio_engine_send(w->e, c, data, len, level); /* echo at the level it came in */
}

static void cb_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    side_rec *r = rec_of(user, c);
    pthread_mutex_lock(&lock);
    r->reason = reason;
    r->code = code;
    snprintf(r->detail, sizeof(r->detail), "%s", detail);
    r->closed = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static world *world_start(int server)
{
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->server = server;
    negio_engine_options o = {.loops = 1,
                              .workers = 2,
                              .handshake_timeout_ms = 10000,
                              .shutdown_timeout_ms = 1000,
                              .callbacks = {.on_authenticated = cb_authenticated,
                                            .on_message = cb_message,
                                            .on_closed = cb_closed},
                              .user = w};
    assert_int_equal(negio_engine_new(&w->e, &o), 0);
    return w;
}

static void world_stop(world **w)
{
    if (*w != NULL) {
        negio_engine_del((*w)->e);
        free(*w);
        *w = NULL;
    }
}

/* ---- fixture: one server engine listening at every minimum level, one client engine ------ */

static int fx_setup(void **state)
{
    cur_path = *(const test_path *)*state;
    cli = world_start(0);
    for (int l = NEGIO_LEVEL_NONE; l <= NEGIO_LEVEL_SEAL; l++) {
        srvw[l] = world_start(1);
        negio_config *sc = test_server_config(cur_path);
        if (negio_config_set_min_level(sc, (negio_level)l) != NEGIO_OK ||
            negio_engine_listen(srvw[l]->e, "127.0.0.1:0", sc, &srv_port[l]) != NEGIO_OK)
            return -1;
        negio_config_del(sc);
    }
    return 0;
}

static int fx_teardown(void **state)
{
    (void)state;
    world_stop(&cli); /* clients first: nothing more reaches the servers */
    for (int l = 0; l < 3; l++)
        world_stop(&srvw[l]);
    proxy_stop(live_proxy);
    live_proxy = NULL;
    return 0;
}

static proxy *px_start(negio_level server_min, unsigned seed, uint16_t *port)
{
    proxy *px;
    assert_int_equal(proxy_start(&px, srv_port[server_min], seed, port), 0);
    live_proxy = px;
    return px;
}

static void px_stop(proxy *px)
{
    proxy_stop(px);
    live_proxy = NULL;
}

/* ---- messages ------------------------------------------------------------------------------- */

typedef struct msgspec {
    const uint8_t *data;
    size_t len;
    negio_level level;
} msgspec;

static char genuine_text[NMSGS][64];
static msgspec genuine[NMSGS];

/* NMSGS distinct ~40-byte messages at LEVEL. */
static const msgspec *genuine_at(negio_level level)
{
    for (int i = 0; i < NMSGS; i++) {
        int n = snprintf(genuine_text[i], sizeof(genuine_text[i]), "genuine message %d at %-4s %s",
                         i, negio_level_name(level), "(from the client)");
        genuine[i] = (msgspec){(const uint8_t *)genuine_text[i], (size_t)n, level};
    }
    return genuine;
}

/* ---- one connection through the proxy ------------------------------------------------------- */

typedef struct conn_out {
    side_rec *c; /* the client's view */
    side_rec *s; /* the server's view (NULL if the server never saw the connection) */
} conn_out;

static void dump_rec(const char *who, const side_rec *r)
{
    if (r == NULL) {
        print_error("  %s: no record\n", who);
        return;
    }
    print_error("  %s: %s, %d message(s), closed %d %s %s: %s\n", who,
                r->authenticated ? "authenticated" : "not authenticated", r->nmsgs, r->closed,
                negio_close_reason_name(r->reason), negio_err_name(r->code), r->detail);
}

#define CHECK(o, cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("[%s, %s] check failed: %s\n", test_path_name(cur_path), where, #cond);    \
            dump_rec("client", (o)->c);                                                            \
            dump_rec("server", (o)->s);                                                            \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Waits (bounded) until PRED holds, under the lock. */
#define WAIT_UNTIL(pred, ms)                                                                       \
    do {                                                                                           \
        struct timespec until_ = test_deadline_after_ms(ms);                                       \
        pthread_mutex_lock(&lock);                                                                 \
        while (!(pred)) {                                                                          \
            if (pthread_cond_timedwait(&cond, &lock, &until_) == ETIMEDOUT)                        \
                break;                                                                             \
        }                                                                                          \
        pthread_mutex_unlock(&lock);                                                               \
    } while (0)

static side_rec *find_server_rec(uint16_t port)
{
    for (int l = 0; l < 3; l++) {
        world *w = srvw[l];
        for (int i = w->nrecs - 1; i >= 0; i--) {
            if (w->recs[i].port == port)
                return &w->recs[i];
        }
    }
    return NULL;
}

static int server_closed(uint16_t port)
{
    side_rec *r = find_server_rec(port);
    return r != NULL && r->closed;
}

/* Opens connection number INDEX of proxy PX (listening on PPORT) with client config CCFG, sends
 * the N messages M (those from LATE on only once the client is authenticated), closes gracefully
 * once all N echoes came back, and waits until both sides have reported on_closed. */
static conn_out conn_run_ex(proxy *px, uint16_t pport, int index, const negio_config *ccfg,
                            const msgspec *m, int n, int late, int wait_n)
{
    conn_out o = {0};
    pthread_mutex_lock(&lock);
    if (cli->nrecs == MAX_RECS)
        abort();
    side_rec *c = &cli->recs[cli->nrecs++];
    memset(c, 0, sizeof(*c));
    pthread_mutex_unlock(&lock);
    o.c = c;
    negio_econn *h;
    assert_int_equal(negio_engine_connect(cli->e, "127.0.0.1", pport, ccfg, c, &h), 0);
    for (int i = 0; i < n; i++) {
        if (i == late)
            WAIT_UNTIL(c->closed || c->authenticated, WAIT_MS);
        int rc = negio_engine_send(cli->e, h, m[i].data, m[i].len, m[i].level);
        CHECK(&o, rc == NEGIO_OK || (i >= late && rc == NEGIO_ERR_CLOSED));
    }
    WAIT_UNTIL(c->closed || c->nmsgs >= wait_n, WAIT_MS);
    pthread_mutex_lock(&lock);
    int done = c->closed || c->nmsgs >= wait_n;
    pthread_mutex_unlock(&lock);
    if (!done)
        print_error("[%s, %s] no outcome after %d ms: closing\n", test_path_name(cur_path), where,
                    WAIT_MS);
    (void)negio_engine_close(h, 0); /* NEGIO_ERR_CLOSED if it already ended */
    WAIT_UNTIL(c->closed, WAIT_MS);
    uint16_t up = 0;
    TEST_POLL_UNTIL((up = proxy_upstream_port(px, index)) != 0, WAIT_MS);
    if (up != 0) {
        WAIT_UNTIL(server_closed(up), WAIT_MS);
        pthread_mutex_lock(&lock);
        o.s = find_server_rec(up);
        pthread_mutex_unlock(&lock);
    }
    negio_econn_unref(h);
    CHECK(&o, c->closed);
    CHECK(&o, o.s != NULL && o.s->closed);
    return o;
}

static conn_out conn_run_late(proxy *px, uint16_t pport, int index, const negio_config *ccfg,
                              const msgspec *m, int n, int late)
{
    return conn_run_ex(px, pport, index, ccfg, m, n, late, n);
}

static conn_out conn_run(proxy *px, uint16_t pport, int index, const negio_config *ccfg,
                         const msgspec *m, int n)
{
    return conn_run_ex(px, pport, index, ccfg, m, n, n, n);
}

/* ---- what may and may not happen ------------------------------------------------------------- */

enum { SIDE_NONE = 0, SIDE_SERVER = 1, SIDE_CLIENT = 2 };

typedef struct expect {
    int side; /* the attacked side (the receiver of the tampered stream); NONE: all intact */
    negio_close_reason reason;
    int code, alt;   /* the code on_closed must report (or ALT, when non-zero) */
    int dmin, dmax;  /* genuine messages the attacked side delivers before it fails */
    int other_clean; /* the other side may report a clean close (its own local close) */
} expect;

/* Every message delivered on side R is genuine message i, in order, at its level. */
static void check_genuine(const conn_out *o, const side_rec *r, const msgspec *m, int n)
{
    CHECK(o, r->nmsgs <= n);
    for (int i = 0; i < r->nmsgs && i < REC_MSGS; i++) {
        const msg_rec *g = &r->msgs[i];
        int same = g->len == m[i].len && g->level == m[i].level &&
                   g->sum == checksum_update(0, m[i].data, m[i].len);
        if (!same)
            print_error("  message %d on the %s: %zu bytes at %s, expected %zu at %s\n", i,
                        r == o->s ? "server" : "client", g->len, negio_level_name(g->level),
                        m[i].len, negio_level_name(m[i].level));
        CHECK(o, same);
    }
}

static void check_outcome(const conn_out *o, const msgspec *m, int n, const expect *ex)
{
    if (verbose)
        print_message("[%s, %s] client: %s %s (%d msgs); server: %s %s (%d msgs): %s\n",
                      test_path_name(cur_path), where, negio_close_reason_name(o->c->reason),
                      negio_err_name(o->c->code), o->c->nmsgs,
                      negio_close_reason_name(o->s->reason), negio_err_name(o->s->code),
                      o->s->nmsgs, ex->side == SIDE_CLIENT ? o->c->detail : o->s->detail);
    check_genuine(o, o->s, m, n);
    check_genuine(o, o->c, m, n);
    if (ex->side == SIDE_NONE) {
        CHECK(o, o->s->nmsgs == n && o->c->nmsgs == n);
        CHECK(o, o->c->reason == NEGIO_CLOSE_CLEAN && o->c->code == 0);
        CHECK(o, o->s->reason == NEGIO_CLOSE_CLEAN && o->s->code == 0);
        return;
    }
    const side_rec *a = ex->side == SIDE_SERVER ? o->s : o->c;
    const side_rec *b = ex->side == SIDE_SERVER ? o->c : o->s;
    CHECK(o, a->reason == ex->reason);
    CHECK(o, a->code == ex->code || (ex->alt != 0 && a->code == ex->alt));
    CHECK(o, a->detail[0] != '\0');
    CHECK(o, a->nmsgs >= ex->dmin && a->nmsgs <= ex->dmax);
    if (!ex->other_clean)
        CHECK(o, b->reason != NEGIO_CLOSE_CLEAN);
}

static expect fatal(int side, int code, int delivered)
{
    return (expect){.side = side,
                    .reason =
                        code == NEGIO_ERR_TRUNCATED ? NEGIO_CLOSE_TRUNCATED : NEGIO_CLOSE_ERROR,
                    .code = code,
                    .dmin = delivered,
                    .dmax = delivered};
}

/* EX, with up to DMAX genuine messages delivered before the failure. */
static expect up_to(expect ex, int dmax)
{
    ex.dmax = dmax;
    return ex;
}

/* FATAL, but the attacked side may report ALT instead of its code. */
static expect fatal_or(int side, int code, int alt, int delivered)
{
    expect ex = fatal(side, code, delivered);
    ex.alt = alt;
    return ex;
}

/* ---- rules ----------------------------------------------------------------------------------- */

static proxy_rule rule(proxy_dir dir, int type, int nth, proxy_act act)
{
    proxy_rule r;
    memset(&r, 0, sizeof(r));
    r.conn = -1;
    r.dir = dir;
    r.type = type;
    r.nth = nth;
    r.act = act;
    return r;
}

static proxy_rule flip(proxy_dir dir, int type, int nth, long off, uint8_t x)
{
    proxy_rule r = rule(dir, type, nth, PROXY_FLIP);
    r.nflips = 1;
    r.flip_off[0] = off;
    r.flip_xor[0] = x;
    return r;
}

static proxy_rule with_bytes(proxy_rule r, const uint8_t *b, size_t n)
{
    r.bytes = b;
    r.nbytes = n;
    return r;
}

static proxy_rule with_keep(proxy_rule r, long keep)
{
    r.keep = keep;
    return r;
}

static proxy_rule on_conn(proxy_rule r, int conn)
{
    r.conn = conn;
    return r;
}

static negio_config *client_cfg(negio_level min)
{
    negio_config *c = test_client_config(cur_path);
    assert_int_equal(negio_config_set_min_level(c, min), 0);
    return c;
}

/* One connection with RULES between a client (minimum sign) and the server listening with
 * minimum SERVER_MIN; the client sends NMSGS genuine messages at LEVEL. */
static void attack(negio_level server_min, negio_level level, const proxy_rule *rules, int nrules,
                   expect ex)
{
    uint16_t pport;
    proxy *px = px_start(server_min, 7, &pport);
    int ids[16];
    assert_true(nrules <= 16);
    for (int i = 0; i < nrules; i++)
        ids[i] = proxy_add_rule(px, &rules[i]);
    negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
    const msgspec *m = genuine_at(level);
    conn_out o = conn_run(px, pport, 0, cc, m, NMSGS);
    negio_config_del(cc);
    for (int i = 0; i < nrules; i++) {
        int fired = proxy_fired(px, ids[i]);
        if (fired == 0)
            print_error("  rule %d (action %d on dir %d type %d #%d) never fired\n", i,
                        rules[i].act, rules[i].dir, rules[i].type, rules[i].nth);
        CHECK(&o, fired >= 1);
    }
    check_outcome(&o, m, NMSGS, &ex);
    px_stop(px);
}

#define NRULES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* One attack of a table: WHERE (what the rule does, for the failure messages), the server's
 * minimum level, the rule, and what must come of it. */
typedef struct attack_case {
    const char *where;
    negio_level server_min;
    proxy_rule rule;
    expect ex;
} attack_case;

/* Runs each attack with the client's messages at LEVEL; a row whose server minimum is above
 * LEVEL does not apply (the messages would be refused for their level alone) and is skipped. */
static void run_attacks(const attack_case *cs, size_t n, negio_level level)
{
    for (size_t i = 0; i < n; i++) {
        if (cs[i].server_min > level)
            continue;
        set_where("%s", cs[i].where);
        attack(cs[i].server_min, level, &cs[i].rule, 1, cs[i].ex);
    }
}

#define RUN_ATTACKS(cs, level) run_attacks(cs, sizeof(cs) / sizeof(cs[0]), level)

static int path_is_ntlm(void)
{
    return cur_path == PATH_NEG_NTLM || cur_path == PATH_NTLM;
}

/* ---- an intact run: learn the handshake frames of this path ---------------------------------- */

typedef struct learned {
    int hs[2];          /* HANDSHAKE frames per direction */
    uint8_t *challenge; /* the server's first HANDSHAKE frame (NTLM paths: holds the CHALLENGE) */
    size_t nchallenge;
} learned;

static learned learn_path(void)
{
    learned l = {0};
    uint16_t pport;
    set_where("intact run to learn the handshake");
    proxy *px = px_start(NEGIO_LEVEL_SIGN, 1, &pport);
    negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
    const msgspec *m = genuine_at(NEGIO_LEVEL_SEAL);
    conn_out o = conn_run(px, pport, 0, cc, m, NMSGS);
    negio_config_del(cc);
    expect intact = {0};
    check_outcome(&o, m, NMSGS, &intact);
    CHECK(&o, o.s->mech == test_path_mech(cur_path));
    for (int d = 0; d < 2; d++) {
        int n = proxy_frame_count(px, 0, (proxy_dir)d);
        for (int i = 0; i < n; i++) {
            size_t len;
            uint8_t *f = proxy_frame_copy(px, 0, (proxy_dir)d, i, &len);
            if (f[1] == PROXY_HANDSHAKE) {
                if (d == PROXY_S2C && l.hs[d] == 0) {
                    l.challenge = f;
                    l.nchallenge = len;
                    f = NULL;
                }
                l.hs[d]++;
            }
            free(f);
        }
    }
    px_stop(px);
    return l;
}

/* ---- 1. framing ------------------------------------------------------------------------------ */

static void framing(void **state)
{
    (void)state;
    const negio_level L = NEGIO_LEVEL_SEAL;

    /* announced lengths over the limits: fatal on the header alone */
    static const uint32_t big[] = {0xFFFFFFFFu, 0x80000000u, 1048576u + 1};
    for (size_t i = 0; i < 3; i++) {
        set_where("DATA #1 length set to 0x%08x", big[i]);
        proxy_rule r = rule(PROXY_C2S, PROXY_DATA, 1, PROXY_SET_LENGTH);
        r.length = big[i];
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_TOO_LARGE, 1));
        set_where("server's DATA #1 length set to 0x%08x", big[i]);
        r.dir = PROXY_S2C;
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_TOO_LARGE, 1));
    }
    static const uint32_t big_hs[] = {0xFFFFFFFFu, 65536u + 1};
    for (size_t i = 0; i < 2; i++) {
        set_where("first HANDSHAKE length set to 0x%08x", big_hs[i]);
        proxy_rule r = rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_SET_LENGTH);
        r.length = big_hs[i];
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_TOO_LARGE, 0));
        set_where("server's first HANDSHAKE length set to 0x%08x", big_hs[i]);
        r.dir = PROXY_S2C;
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_TOO_LARGE, 0));
    }

    /* the stream ends mid-header, right after a header, mid-body (between frames: below) */
    static const long keeps[] = {3, 8, 20};
    for (size_t i = 0; i < 3; i++) {
        set_where("stream cut after %ld bytes of the first HANDSHAKE", keeps[i]);
        proxy_rule r = with_keep(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_TRUNCATE), keeps[i]);
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_TRUNCATED, 0));
        set_where("stream cut after %ld bytes of the server's first HANDSHAKE", keeps[i]);
        r.dir = PROXY_S2C;
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_TRUNCATED, 0));
        set_where("stream cut after %ld bytes of DATA #1", keeps[i]);
        r = with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_TRUNCATE), keeps[i]);
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_TRUNCATED, 1));
        set_where("stream cut after %ld bytes of the server's DATA #1", keeps[i]);
        r.dir = PROXY_S2C;
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_TRUNCATED, 1));
    }
    /* header fields: wrong version, unknown type, unknown level, reserved flag bits */
    struct {
        const char *what;
        long off;
        uint8_t hs_xor, data_xor; /* to a HANDSHAKE (level none) / a sealed DATA frame */
    } hdr[] = {
        {"version 1 -> 3", 0, 0x02, 0x02},
        {"version 1 -> 0", 0, 0x01, 0x01},
        {"type -> 9", 1, 1 ^ 9, 4 ^ 9},
        {"type -> 0", 1, 1, 4},
        {"level -> 3", 2, 3, 2 ^ 3},
        {"level -> 255", 2, 0xFF, 2 ^ 0xFF},
        {"flags -> 0x80", 3, 0x80, 0x80},
        {"flags -> MORE on a handshake frame / 0x02 on DATA", 3, 0x01, 0x02},
    };
    for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
        set_where("first HANDSHAKE header %s", hdr[i].what);
        proxy_rule r = flip(PROXY_C2S, PROXY_HANDSHAKE, 0, hdr[i].off, hdr[i].hs_xor);
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 0));
        set_where("server's first HANDSHAKE header %s", hdr[i].what);
        r.dir = PROXY_S2C;
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 0));
        set_where("DATA #1 header %s", hdr[i].what);
        r = flip(PROXY_C2S, PROXY_DATA, 1, hdr[i].off, hdr[i].data_xor);
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 1));
    }

    /* the stream cut between frames; frames out of place */
    size_t n, np, nl, ne;
    uint8_t *data_none = proxy_frame_make(PROXY_DATA, NEGIO_LEVEL_NONE, 0, "EVIL early", 10, &n);
    static const uint8_t policy_body[4 + 16 + 16] = {0, 0, 0, 16};
    uint8_t *policy =
        proxy_frame_make(PROXY_POLICY, NEGIO_LEVEL_SIGN, 0, policy_body, sizeof(policy_body), &np);
    static const uint8_t token[] = {0x60, 0x03, 0x06, 0x01, 0x00};
    uint8_t *late_hs = proxy_frame_make(PROXY_HANDSHAKE, 0, 0, token, sizeof(token), &nl);
    uint8_t *empty = proxy_frame_make(PROXY_HANDSHAKE, 0, 0, NULL, 0, &ne);
    const attack_case cases[] = {
        {"stream cut between DATA #0 and DATA #1", NEGIO_LEVEL_SIGN,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_TRUNCATE), 0),
         fatal(SIDE_SERVER, NEGIO_ERR_TRUNCATED, 1)},
        {"stream cut between the POLICY and the first DATA", NEGIO_LEVEL_SIGN,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 0, PROXY_TRUNCATE), 0),
         fatal(SIDE_SERVER, NEGIO_ERR_TRUNCATED, 0)},
        /* out of place */
        {"a DATA frame injected before the first HANDSHAKE", NEGIO_LEVEL_NONE,
         with_bytes(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_INJECT_BEFORE), data_none, n),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 0)},
        {"a DATA frame injected before the server's first HANDSHAKE", NEGIO_LEVEL_NONE,
         with_bytes(rule(PROXY_S2C, PROXY_HANDSHAKE, 0, PROXY_INJECT_BEFORE), data_none, n),
         fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 0)},
        {"a POLICY frame injected before the first HANDSHAKE", NEGIO_LEVEL_SIGN,
         with_bytes(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_INJECT_BEFORE), policy, np),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 0)},
        {"a HANDSHAKE frame injected after establishment", NEGIO_LEVEL_SIGN,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), late_hs, nl),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 1)},
        {"a HANDSHAKE frame injected after establishment, to the client", NEGIO_LEVEL_SIGN,
         with_bytes(rule(PROXY_S2C, PROXY_DATA, 1, PROXY_INJECT_BEFORE), late_hs, nl),
         fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 1)},
        {"the client's POLICY replayed (a second POLICY)", NEGIO_LEVEL_SIGN,
         rule(PROXY_C2S, PROXY_POLICY, 0, PROXY_DUPLICATE),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 0)},
        {"the server's POLICY replayed (a second POLICY)", NEGIO_LEVEL_SIGN,
         rule(PROXY_S2C, PROXY_POLICY, 0, PROXY_DUPLICATE),
         fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 0)},
        {"the first HANDSHAKE replaced by an empty one", NEGIO_LEVEL_SIGN,
         with_bytes(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_REPLACE), empty, ne),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 0)},
        {"the server's first HANDSHAKE replaced by an empty one", NEGIO_LEVEL_SIGN,
         with_bytes(rule(PROXY_S2C, PROXY_HANDSHAKE, 0, PROXY_REPLACE), empty, ne),
         fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 0)},
    };
    RUN_ATTACKS(cases, L);
    free(data_none);
    free(policy);
    free(late_hs);
    free(empty);
}

/* ---- 2. the byte stream split anywhere, delayed, coalesced: everything intact ---------------- */

#define BIG_MSG (1500 * 1024) /* two DATA frames at the default max_frame */

static void intact_run(const char *what, const proxy_rule *rules, int nrules, int with_big)
{
    static uint8_t big[BIG_MSG], mid[20000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + i / 251);
    for (size_t i = 0; i < sizeof(mid); i++)
        mid[i] = (uint8_t)(i * 13 + 5);
    const msgspec m[] = {
        {(const uint8_t *)"", 0, NEGIO_LEVEL_NONE},
        {(const uint8_t *)"", 0, NEGIO_LEVEL_SIGN},
        {(const uint8_t *)"", 0, NEGIO_LEVEL_SEAL},
        {(const uint8_t *)"in the clear", 12, NEGIO_LEVEL_NONE},
        {(const uint8_t *)"signed only", 11, NEGIO_LEVEL_SIGN},
        {(const uint8_t *)"sealed", 6, NEGIO_LEVEL_SEAL},
        {mid, sizeof(mid), NEGIO_LEVEL_SIGN},
        {mid, sizeof(mid), NEGIO_LEVEL_SEAL},
        {big, sizeof(big), NEGIO_LEVEL_SEAL},
    };
    int n = with_big ? 9 : 8;
    set_where("%s", what);
    uint16_t pport;
    proxy *px = px_start(NEGIO_LEVEL_NONE, 0x5eed, &pport);
    int ids[8];
    for (int i = 0; i < nrules; i++)
        ids[i] = proxy_add_rule(px, &rules[i]);
    negio_config *cc = client_cfg(NEGIO_LEVEL_NONE);
    /* the 1.5 MB message only once authenticated: written before, it stalls the handshake
     * (see write_over_high_water_before_establishment_does_not_stall_the_handshake) */
    conn_out o = conn_run_late(px, pport, 0, cc, m, n, 8);
    negio_config_del(cc);
    for (int i = 0; i < nrules; i++)
        CHECK(&o, proxy_fired(px, ids[i]) >= 1);
    expect intact = {0};
    check_outcome(&o, m, n, &intact);
    CHECK(&o, o.c->mech == test_path_mech(cur_path) && o.s->mech == test_path_mech(cur_path));
    px_stop(px);
}

static void fragmentation_and_delay(void **state)
{
    (void)state;
    /* every frame in both directions one byte per write, 100 us apart */
    proxy_rule bytes[2];
    for (int d = 0; d < 2; d++) {
        bytes[d] = rule((proxy_dir)d, PROXY_ANY_TYPE, -1, PROXY_FRAGMENT);
        bytes[d].cut = 0;
        bytes[d].gap_us = 100;
    }
    /* the two 20,000-byte messages in pieces of up to 512 bytes: one byte at a time would take
     * seconds */
    proxy_rule r1[6] = {bytes[0], bytes[1]};
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < 2; k++) {
            r1[2 + 2 * d + k] = rule((proxy_dir)d, PROXY_DATA, 6 + k, PROXY_FRAGMENT);
            r1[2 + 2 * d + k].cut = 512;
        }
    }
    intact_run("every frame one byte at a time", r1, 6, 0);

    /* random cuts (seeded) of 1..97 bytes, 50 us apart; the big message in cuts of 1..64 KiB */
    proxy_rule r2[6];
    for (int d = 0; d < 2; d++) {
        r2[d] = rule((proxy_dir)d, PROXY_ANY_TYPE, -1, PROXY_FRAGMENT);
        r2[d].cut = 97;
        r2[d].gap_us = 50;
        r2[2 + 2 * d] = rule((proxy_dir)d, PROXY_DATA, 8, PROXY_FRAGMENT);
        r2[2 + 2 * d].cut = 65536;
        r2[3 + 2 * d] = rule((proxy_dir)d, PROXY_DATA, 9, PROXY_FRAGMENT);
        r2[3 + 2 * d].cut = 65536;
    }
    intact_run("random cuts", r2, 6, 1);

    /* delays: the first DATA frame held 300 ms, so that the rest queue behind it and arrive
     * together (many frames in one read); the server's POLICY held too */
    proxy_rule r3[3];
    r3[0] = rule(PROXY_C2S, PROXY_DATA, 0, PROXY_DELAY);
    r3[0].delay_ms = 300;
    r3[1] = rule(PROXY_S2C, PROXY_DATA, 0, PROXY_DELAY);
    r3[1].delay_ms = 300;
    r3[2] = rule(PROXY_S2C, PROXY_POLICY, 0, PROXY_DELAY);
    r3[2].delay_ms = 200;
    intact_run("delays and coalesced frames", r3, 3, 1);
}

/* Regression (fixed in src/engine/output.c, update_backpressure): messages written before
 * establishment used to count towards the high-water mark, and above it the engine stopped
 * reading from the peer, so a client that wrote more than high_water (1 MiB by default) before
 * its handshake completed never read the server's answer and the handshake deadline ended the
 * connection. engine.h promises that writes made before authentication "go out after it" (up to
 * hard_limit, 16 MiB); the backpressure check now waits for establishment. The proxy only passes
 * bytes here. */
static void write_over_high_water_before_establishment_does_not_stall_the_handshake(void **state)
{
    (void)state;
    static uint8_t big[BIG_MSG];
    memset(big, 0x42, sizeof(big));
    const msgspec m[] = {{big, sizeof(big), NEGIO_LEVEL_SEAL}};
    set_where("one 1.5 MB message written before establishment");
    uint16_t pport;
    proxy *px = px_start(NEGIO_LEVEL_SIGN, 1, &pport);
    negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
    pthread_mutex_lock(&lock);
    side_rec *c = &cli->recs[cli->nrecs++];
    memset(c, 0, sizeof(*c));
    pthread_mutex_unlock(&lock);
    negio_econn *h;
    assert_int_equal(negio_engine_connect(cli->e, "127.0.0.1", pport, cc, c, &h), 0);
    negio_config_del(cc);
    assert_int_equal(negio_engine_send(cli->e, h, m[0].data, m[0].len, m[0].level), 0);
    int64_t t0 = test_now_ms();
    WAIT_UNTIL(c->closed || c->nmsgs >= 1, 5000);
    pthread_mutex_lock(&lock);
    int authenticated = c->authenticated, echoed = c->nmsgs;
    pthread_mutex_unlock(&lock);
    print_message("[%s, %s] after %lld ms: authenticated %d, echoes %d\n", test_path_name(cur_path),
                  where, (long long)(test_now_ms() - t0), authenticated, echoed);
    (void)negio_engine_close(h, 0);
    WAIT_UNTIL(c->closed, WAIT_MS);
    negio_econn_unref(h);
    px_stop(px);
    assert_true(authenticated);
    assert_int_equal(echoed, 1);
}

/* Waits at most MS for the child process PID, then kills it (*TIMED_OUT set); returns its wait
 * status. */
static int wait_child(pid_t pid, int ms, int *timed_out)
{
    int st = 0;
    pid_t done = 0;
    TEST_POLL_UNTIL((done = waitpid(pid, &st, WNOHANG)) != 0, ms);
    *timed_out = done == 0;
    if (done == 0) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, &st, 0);
    }
    return st;
}

/* A child process's wait status ST must be an exit with status 0; a signal that killed it is
 * reported as WHAT's death. */
static void check_child_exit(int st, int timed_out, const char *what)
{
    if (timed_out)
        fail_msg("%s did not finish in 60 s", what);
    if (WIFSIGNALED(st))
        print_error("%s died of signal %d (%s)\n", what, WTERMSIG(st), strsignal(WTERMSIG(st)));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Regression (fixed in src/engine/listener.c: loop 0 now sets each listener up itself, CMD_LISTEN):
 * the new listener used to be linked into e->listeners before its uv_poll handle was initialised,
 * on the caller's thread, and a CMD_RESUME posted by an earlier listen call made loop 0
 * uv_poll_start() a handle still uninitialised: SIGSEGV when listen was called several times in
 * a row, as engine.h allows ("May be called more than once"). Run in a fresh process (this
 * program again, NEGIO_PROXY_REPRO=listen), since a crash would be on a loop thread. */
static int repro_listen_race(void)
{
    for (int i = 0; i < 500; i++) {
        negio_engine *e;
        negio_engine_options o = {.loops = 1, .workers = 1};
        if (negio_engine_new(&e, &o) != NEGIO_OK)
            return 2;
        negio_config *sc;
        if (negio_config_new(&sc, NEGIO_ROLE_SERVER) != NEGIO_OK)
            return 3;
        for (int k = 0; k < 8; k++) {
            uint16_t port;
            if (negio_engine_listen(e, "127.0.0.1:0", sc, &port) != NEGIO_OK)
                return 4;
        }
        negio_config_del(sc);
        negio_engine_del(e);
    }
    return 0;
}

static void listening_twice_on_one_engine_does_not_crash(void **state)
{
    (void)state;
    extern char **environ;
    setenv("NEGIO_PROXY_REPRO", "listen", 1);
    char *argv[] = {"test_proxy", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    unsetenv("NEGIO_PROXY_REPRO");
    assert_int_equal(rc, 0);
    int timed_out, st = wait_child(pid, 60000, &timed_out);
    check_child_exit(st, timed_out, "the process of 500 engines listening eight times each");
}

/* ---- 3. the handshake ------------------------------------------------------------------------ */

static int challenge_offset(const uint8_t *f, size_t n)
{
    for (size_t i = HDR; i + 12 <= n; i++) {
        if (memcmp(f + i, "NTLMSSP\0", 8) == 0 && f[i + 8] == 2)
            return (int)i;
    }
    return -1;
}

static void handshake(void **state)
{
    (void)state;
    learned l = learn_path();
    const negio_level L = NEGIO_LEVEL_SEAL;

    /* garbage and corrupted tokens at every round, in both directions: the receiver's GSS call
     * fails (its HANDSHAKE_ERROR tells the other side), or, for a field the mechanism does not
     * authenticate in the handshake itself (NTLM's encrypted session key), the two sides end up
     * with different keys and the first MIC, the POLICY frame, fails: INTEGRITY, before any
     * message */
    for (int d = 0; d < 2; d++) {
        int side = d == PROXY_C2S ? SIDE_SERVER : SIDE_CLIENT;
        for (int k = 0; k < l.hs[d]; k++) {
            long offs[] = {HDR, HDR + 1, -1};
            /* the last byte of a raw NTLM NEGOTIATE is its Version field, which [MS-NLMP] 2.2.2.10
             * makes informational and raw NTLM leaves unprotected (see
             * raw_ntlm_negotiate_flags_cannot_be_downgraded_on_the_path): flip its message type */
            if (cur_path == PATH_NTLM && d == PROXY_C2S && k == 0)
                offs[2] = HDR + 8;
            for (size_t i = 0; i < 3; i++) {
                set_where("%s HANDSHAKE #%d: byte %ld flipped", d ? "server's" : "client's", k,
                          offs[i]);
                proxy_rule r = flip((proxy_dir)d, PROXY_HANDSHAKE, k, offs[i], 0x55);
                expect ex = fatal(side, NEGIO_ERR_HANDSHAKE, 0);
                ex.alt = NEGIO_ERR_INTEGRITY;
                attack(NEGIO_LEVEL_SIGN, L, &r, 1, ex);
            }
            static const long cuts[] = {16, -1};
            for (size_t i = 0; i < 2; i++) {
                set_where("%s HANDSHAKE #%d cut to %ld bytes", d ? "server's" : "client's", k,
                          cuts[i]);
                proxy_rule r =
                    with_keep(rule((proxy_dir)d, PROXY_HANDSHAKE, k, PROXY_CUT_BODY), cuts[i]);
                expect ex = fatal(side, NEGIO_ERR_HANDSHAKE, 0);
                ex.alt = NEGIO_ERR_INTEGRITY;
                attack(NEGIO_LEVEL_SIGN, L, &r, 1, ex);
            }
        }
    }
    uint8_t garbage[64];
    unsigned seed = 99;
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (uint8_t)test_rand(&seed);
    size_t n;
    uint8_t *gf = proxy_frame_make(PROXY_HANDSHAKE, 0, 0, garbage, sizeof(garbage), &n);
    set_where("first HANDSHAKE replaced by 64 random bytes");
    proxy_rule r = with_bytes(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_REPLACE), gf, n);
    attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_HANDSHAKE, 0));
    set_where("server's first HANDSHAKE replaced by 64 random bytes");
    r.dir = PROXY_S2C;
    attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_HANDSHAKE, 0));
    free(gf);

    /* a forged HANDSHAKE_ERROR in place of the server's answer: an error, never a clean end */
    static const uint8_t hse_body[] = {0, 0, 0, 0, 'f', 'o', 'r', 'g', 'e', 'd'};
    uint8_t *hse = proxy_frame_make(PROXY_HS_ERROR, 0, 0, hse_body, sizeof(hse_body), &n);
    set_where("server's first HANDSHAKE replaced by a forged HANDSHAKE_ERROR");
    r = with_bytes(rule(PROXY_S2C, PROXY_HANDSHAKE, 0, PROXY_REPLACE), hse, n);
    attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_CLIENT, NEGIO_ERR_PEER, 0));
    free(hse);

    /* a token replayed from another connection: Kerberos' AP-REQ hits the replay cache; an
     * NTLM AUTHENTICATE answers another connection's challenge */
    {
        int k = path_is_ntlm() ? 1 : 0;
        set_where("client's HANDSHAKE #%d replayed on a new connection", k);
        uint16_t pport;
        proxy *px = px_start(NEGIO_LEVEL_SIGN, 3, &pport);
        proxy_rule rec = on_conn(rule(PROXY_C2S, PROXY_HANDSHAKE, k, PROXY_RECORD), 0);
        proxy_rule spl = on_conn(rule(PROXY_C2S, PROXY_HANDSHAKE, k, PROXY_SPLICE), 1);
        int id0 = proxy_add_rule(px, &rec), id1 = proxy_add_rule(px, &spl);
        negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
        const msgspec *m = genuine_at(L);
        conn_out a = conn_run(px, pport, 0, cc, m, NMSGS);
        expect intact = {0};
        check_outcome(&a, m, NMSGS, &intact);
        conn_out b = conn_run(px, pport, 1, cc, m, NMSGS);
        negio_config_del(cc);
        CHECK(&b, proxy_fired(px, id0) == 1 && proxy_fired(px, id1) == 1);
        expect ex = fatal(SIDE_SERVER, NEGIO_ERR_HANDSHAKE, 0);
        check_outcome(&b, m, NMSGS, &ex);
        if (!path_is_ntlm())
            CHECK(&b, strstr(b.s->detail, "replay") != NULL);
        px_stop(px);
    }

    /* NTLM: a CHALLENGE whose target name was emptied on the way (gss-ntlmssp 1.2.0 would
     * crash the client): refused by negio's validation, the client survives */
    if (path_is_ntlm()) {
        int at = challenge_offset(l.challenge, l.nchallenge);
        assert_true(at > 0);
        const uint8_t *c = l.challenge + at;
        uint32_t flags = test_le32(c + 20);
        assert_true((flags & 0x00030000u) != 0); /* it announces a target */
        assert_true(c[12] != 0 || c[13] != 0);
        proxy_rule z = rule(PROXY_S2C, PROXY_HANDSHAKE, 0, PROXY_FLIP);
        z.nflips = 4;
        for (int i = 0; i < 4; i++) { /* TargetNameLen and TargetNameMaxLen to 0 */
            z.flip_off[i] = at + 12 + i;
            z.flip_xor[i] = c[12 + i];
        }
        set_where("server's CHALLENGE with an empty target name");
        expect ex = fatal(SIDE_CLIENT, NEGIO_ERR_HANDSHAKE, 0);
        attack(NEGIO_LEVEL_SIGN, L, &z, 1, ex);
    }
    free(l.challenge);
}

/* Raw NTLM (no SPNEGO): the NEGOTIATE message travels unprotected and gss-ntlmssp 1.2.0 does not
 * bind it to the AUTHENTICATE message (no MIC check), so someone on the path can clear its
 * NEGOTIATE_128, NEGOTIATE_56 and KEY_EXCH flags; the server then answers with the same flags
 * and both sides would derive 40-bit sealing keys ([MS-NLMP] 3.4.5.3 SEALKEY: neither 128 nor
 * 56 -> the first 5 bytes of the session key) without key exchange. Under SPNEGO the same change
 * is refused (the NTLM MIC is checked: "Permission denied"), and clearing SIGN, SEAL or
 * EXTENDED_SESSIONSECURITY fails the handshake on every path. negio refuses such contexts (fixed
 * in src/gss/context.c: a context with confidentiality whose security strength is below 64 bits is
 * NEGIO_ERR_POLICY on both sides), so the attacked handshake must not establish. */
static void raw_ntlm_negotiate_flags_cannot_be_downgraded_on_the_path(void **state)
{
    (void)state;
    const long flags = HDR + 12; /* NegotiateFlags, little-endian u32 */
    proxy_rule r = rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_FLIP);
    r.nflips = 1;
    r.flip_off[0] = flags + 3;
    r.flip_xor[0] = 0xe0; /* 56 (0x80000000), KEY_EXCH (0x40000000), 128 (0x20000000) */
    set_where("NTLM NEGOTIATE without 128-bit keys, 56-bit keys and key exchange");
    uint16_t pport;
    proxy *px = px_start(NEGIO_LEVEL_SIGN, 17, &pport);
    int id = proxy_add_rule(px, &r);
    negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
    const msgspec *m = genuine_at(NEGIO_LEVEL_SEAL);
    conn_out o = conn_run(px, pport, 0, cc, m, NMSGS);
    negio_config_del(cc);
    size_t n0, n1;
    uint8_t *neg = proxy_frame_copy(px, 0, PROXY_C2S, 0, &n0);
    uint8_t *chal = proxy_frame_copy(px, 0, PROXY_S2C, 0, &n1);
    CHECK(&o, proxy_fired(px, id) == 1 && neg != NULL && chal != NULL);
    CHECK(&o, n0 >= HDR + 16 && memcmp(neg + HDR, "NTLMSSP\0", 8) == 0 && neg[HDR + 8] == 1);
    CHECK(&o, n1 >= HDR + 24 && memcmp(chal + HDR, "NTLMSSP\0", 8) == 0 && chal[HDR + 8] == 2);
    uint32_t sent = test_le32(neg + flags), granted = test_le32(chal + HDR + 20);
    print_message("[%s, %s] client sent flags 0x%08x, the server saw 0x%08x and granted 0x%08x; "
                  "client %s %s, server %s %s, %d/%d messages sealed with %s keys\n",
                  test_path_name(cur_path), where, sent, sent ^ 0xe0000000u, granted,
                  negio_close_reason_name(o.c->reason), negio_err_name(o.c->code),
                  negio_close_reason_name(o.s->reason), negio_err_name(o.s->code), o.s->nmsgs,
                  o.c->nmsgs, (granted & 0xa0000000u) ? "56/128-bit" : "40-bit");
    free(neg);
    free(chal);
    px_stop(px);
    /* what must happen: the weakened context is refused by policy, nothing is delivered */
    CHECK(&o, !o.s->authenticated || !o.c->authenticated);
    CHECK(&o, o.s->nmsgs == 0 && o.c->nmsgs == 0);
    CHECK(&o, o.c->code == NEGIO_ERR_POLICY || o.s->code == NEGIO_ERR_POLICY);
}

/* Negotiate with a Kerberos ticket: an attacker answers the client's NegTokenInit itself with a
 * NegTokenResp that selects NTLM (RFC 4178 4.2.2). The default downgrade policy, the
 * allowed-mechanisms policy and require-server-auth each stop it before any NTLM message is
 * produced; only a client that allows the fallback starts NTLM with the attacker. */
static void negotiate_downgrade(void **state)
{
    (void)state;
    static const uint8_t resp[] = {
        0xa1, 0x15, 0x30, 0x13, 0xa0, 0x03, 0x0a, 0x01, 0x01, /* negState accept-incomplete */
        0xa1, 0x0c, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01,
        0x82, 0x37, 0x02, 0x02, 0x0a}; /* NTLM */
    size_t n;
    uint8_t *forged = proxy_frame_make(PROXY_HANDSHAKE, 0, 0, resp, sizeof(resp), &n);
    for (int variant = 0; variant < 4; variant++) {
        static const char *names[] = {"the default policy", "allowed = kerberos",
                                      "require server auth", "the NTLM fallback allowed"};
        set_where("forged NegTokenResp selecting NTLM, client with %s", names[variant]);
        uint16_t pport;
        proxy *px = px_start(NEGIO_LEVEL_SIGN, 5, &pport);
        /* the client's first token never reaches the server; the forged answer goes back */
        proxy_rule r1 = with_bytes(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_REPLACE), forged, n);
        proxy_rule r2 = rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_REFLECT);
        int id1 = proxy_add_rule(px, &r1), id2 = proxy_add_rule(px, &r2);
        negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
        if (variant == 1)
            assert_int_equal(negio_config_set_allowed(cc, NEGIO_ALLOW_KERBEROS), 0);
        if (variant == 2)
            assert_int_equal(negio_config_set_require_server_auth(cc, 1), 0);
        if (variant == 3)
            assert_int_equal(negio_config_set_allow_ntlm_fallback(cc, 1), 0);
        const msgspec *m = genuine_at(NEGIO_LEVEL_SEAL);
        conn_out o = conn_run(px, pport, 0, cc, m, NMSGS);
        negio_config_del(cc);
        CHECK(&o, proxy_fired(px, id1) == 1 && proxy_fired(px, id2) == 1);
        int ntlm_tokens = 0;
        int nf = proxy_frame_count(px, 0, PROXY_C2S);
        for (int i = 0; i < nf; i++) {
            size_t len;
            uint8_t *f = proxy_frame_copy(px, 0, PROXY_C2S, i, &len);
            for (size_t k = HDR; k + 8 <= len; k++) {
                if (memcmp(f + k, "NTLMSSP\0", 8) == 0) {
                    ntlm_tokens++;
                    break;
                }
            }
            free(f);
        }
        print_message("[%s] client: %s %s: %s; NTLM tokens the client sent: %d\n", where,
                      negio_close_reason_name(o.c->reason), negio_err_name(o.c->code), o.c->detail,
                      ntlm_tokens);
        CHECK(&o, !o.c->authenticated && !o.s->authenticated);
        CHECK(&o, o.c->nmsgs == 0 && o.s->nmsgs == 0);
        CHECK(&o, o.c->reason == NEGIO_CLOSE_ERROR);
        if (variant == 3) {
            /* allowed to fall back, the client gets an NTLM exchange started by the attacker
             * (which cannot finish it, knowing no password; a relay could) */
            CHECK(&o, ntlm_tokens >= 1);
        } else {
            CHECK(&o, ntlm_tokens == 0);
            CHECK(&o, o.c->code == NEGIO_ERR_HANDSHAKE || o.c->code == NEGIO_ERR_POLICY);
        }
        if (variant == 0)
            CHECK(&o, o.c->code == NEGIO_ERR_POLICY && strstr(o.c->detail, "downgrade") != NULL);
        px_stop(px);
    }
    free(forged);
}

/* ---- 3b. the handshake rewritten on the path, by someone holding no keys ------------------- */

/* Every HANDSHAKE frame, both ways, is hashed by each side into its handshake transcript, which
 * travels inside the first protected frame, the POLICY (PROTOCOL.md section 4.3): whatever the
 * mechanism itself lets through unnoticed, both sides then fail before any message. The cases
 * below are the ones that got through before (issue 13, on commit 4f7be19 each of them
 * authenticated both sides, or, for the forged HANDSHAKE_ERROR, killed the client). */

/* One key-free rewrite, applied by the proxy (PROXY_EDIT), and what it did: DONE counts the
 * frames it changed, read after px_stop(). Its target is found by a byte pattern (FIND) or as
 * the NTLM message of type NTLM; at AT from there it writes PUT, or xors MASK into one byte. */
typedef struct edit_rec {
    int done;
    const uint8_t *find;
    size_t nfind;
    uint32_t ntlm;
    size_t at;
    const uint8_t *put;
    size_t nput;
    uint8_t mask;
    uint32_t clear, set; /* edit_ntlm_flags */
    int element;         /* edit_der_long_form */
} edit_rec;

static uint8_t *edit_locate(const edit_rec *e, uint8_t *f, size_t n)
{
    if (n <= HDR)
        return NULL;
    if (e->find != NULL)
        return memmem(f + HDR, n - HDR, e->find, e->nfind);
    return test_ntlm_find(f + HDR, n - HDR, e->ntlm);
}

static void edit_patch(uint8_t **f, size_t *n, void *user)
{
    edit_rec *e = user;
    uint8_t *p = edit_locate(e, *f, *n);
    size_t need = e->at + (e->nput ? e->nput : 1);
    if (p == NULL || (size_t)(*f + *n - p) < need)
        return;
    if (e->nput)
        memcpy(p + e->at, e->put, e->nput);
    else
        p[e->at] ^= e->mask;
    e->done++;
}

/* The NTLM message of type E->ntlm: E->clear cleared and E->set set in its NegotiateFlags. */
static void edit_ntlm_flags(uint8_t **f, size_t *n, void *user)
{
    edit_rec *e = user;
    uint8_t *m = edit_locate(e, *f, *n);
    uint8_t *fl = m != NULL ? test_ntlm_flags(m, *f + *n) : NULL;
    if (fl == NULL)
        return;
    test_put_le32(fl, (test_le32(fl) & ~e->clear) | e->set);
    e->done++;
}

/* The MsvAvTimestamp AV pair of a CHALLENGE renamed (to 0x000b, an id no one defines): a client
 * that finds no timestamp sends no MIC in its AUTHENTICATE ([MS-NLMP] 3.1.5.1.2), and then
 * nothing in NTLM binds its three messages together. */
static void edit_rename_timestamp(uint8_t **f, size_t *n, void *user)
{
    edit_rec *e = user;
    uint8_t *m = test_ntlm_find(*f + HDR, *n - HDR, 2);
    uint8_t *av = m != NULL ? test_ntlm_av(m, *f + *n, TEST_AV_TIMESTAMP) : NULL;
    if (av == NULL)
        return;
    av[0] = 0x0b;
    e->done++;
}

/* The SPNEGO token in the frame body with the length of its E->element-th DER element encoded
 * in a longer form: the same values, other bytes. */
static void edit_der_long_form(uint8_t **f, size_t *n, void *user)
{
    edit_rec *e = user;
    size_t len;
    uint8_t *body = test_der_long_form(*f + HDR, *n - HDR, e->element, &len);
    if (body == NULL)
        return;
    uint8_t *g = malloc(HDR + len);
    assert_non_null(g);
    memcpy(g, *f, 4); /* version, type, level, flags as they were */
    test_put_be32(g + 4, (uint32_t)len);
    memcpy(g + HDR, body, len);
    free(body);
    free(*f);
    *f = g;
    *n = HDR + len;
    e->done++;
}

static proxy_rule edit_rule(proxy_dir dir, int nth, proxy_edit_fn fn, edit_rec *e)
{
    proxy_rule r = rule(dir, PROXY_HANDSHAKE, nth, PROXY_EDIT);
    r.edit = fn;
    r.edit_user = e;
    return r;
}

/* Whether any frame of direction DIR on the proxy's connection 0 holds an NTLM message of TYPE;
 * if MSG is given, a copy of the first such frame's message is left there (caller frees). */
static int sent_ntlm(proxy *px, proxy_dir dir, uint32_t type, uint8_t **frame, uint8_t **msg,
                     size_t *len)
{
    int nf = proxy_frame_count(px, 0, dir);
    for (int i = 0; i < nf; i++) {
        size_t n;
        uint8_t *f = proxy_frame_copy(px, 0, dir, i, &n);
        uint8_t *m = n > HDR ? test_ntlm_find(f + HDR, n - HDR, type) : NULL;
        if (m != NULL) {
            if (frame != NULL) {
                *frame = f;
                *msg = m;
                *len = (size_t)(f + n - m);
            } else {
                free(f);
            }
            return 1;
        }
        free(f);
    }
    return 0;
}

/* What a handshake rewritten on the path must come to: neither side authenticates, nothing is
 * delivered, both sides end in an error. */
static void check_refused(const conn_out *o)
{
    if (verbose)
        print_message("[%s, %s] client %s %s: %s | server %s %s: %s\n", test_path_name(cur_path),
                      where, negio_close_reason_name(o->c->reason), negio_err_name(o->c->code),
                      o->c->detail, negio_close_reason_name(o->s->reason),
                      negio_err_name(o->s->code), o->s->detail);
    CHECK(o, !o->c->authenticated && !o->s->authenticated);
    CHECK(o, o->c->nmsgs == 0 && o->s->nmsgs == 0);
    CHECK(o, o->c->reason == NEGIO_CLOSE_ERROR || o->c->reason == NEGIO_CLOSE_TRUNCATED);
    CHECK(o, o->s->reason == NEGIO_CLOSE_ERROR || o->s->reason == NEGIO_CLOSE_TRUNCATED);
}

/* Whether side R failed as the one that found the change: the transcripts differ
 * (INTEGRITY), or its mechanism refused a token (HANDSHAKE), or the token failed negio's own
 * check before GSS (HANDSHAKE too). */
static int detected(const side_rec *r)
{
    return r->code == NEGIO_ERR_INTEGRITY || r->code == NEGIO_ERR_HANDSHAKE;
}

/* Whether side R failed because its peer reported a failure, or ended: the other side of a
 * detection. */
static int told(const side_rec *r)
{
    return detected(r) || r->code == NEGIO_ERR_PEER || r->code == NEGIO_ERR_REJECTED ||
           r->code == NEGIO_ERR_TRUNCATED;
}

/* Whether CODE is the transcript's verdict, or the peer's report of it: its protected CLOSE
 * (REJECTED) or its HANDSHAKE_ERROR (PEER). */
static int integrity_or_report(int code)
{
    return code == NEGIO_ERR_INTEGRITY || code == NEGIO_ERR_REJECTED || code == NEGIO_ERR_PEER;
}

/* Runs one connection with the N rules R (each must fire and each edit must change a frame) and
 * checks that the handshake was refused by a detection on one side. */
static conn_out rewritten(const proxy_rule *r, edit_rec *const *edits, int n,
                          const negio_config *cc)
{
    uint16_t pport;
    proxy *px = px_start(NEGIO_LEVEL_SIGN, 23, &pport);
    int ids[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++)
        ids[i] = proxy_add_rule(px, &r[i]);
    const msgspec *m = genuine_at(NEGIO_LEVEL_SEAL);
    conn_out o = conn_run(px, pport, 0, cc, m, NMSGS);
    for (int i = 0; i < n; i++)
        CHECK(&o, proxy_fired(px, ids[i]) >= 1);
    px_stop(px);
    for (int i = 0; i < n; i++) {
        if (edits[i] != NULL && edits[i]->done == 0)
            print_error("  edit %d found nothing to change\n", i);
        CHECK(&o, edits[i] == NULL || edits[i]->done >= 1);
    }
    check_refused(&o);
    CHECK(&o, (detected(o.c) && told(o.s)) || (detected(o.s) && told(o.c)));
    return o;
}

static const uint8_t negtokeninit_ntlm_only[] = {
    0x60, 0x1c, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02,              /* SPNEGO */
    0xa0, 0x12, 0x30, 0x10, 0xa0, 0x0e, 0x30, 0x0c,                          /* mechTypes */
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a}; /* NTLM, no token */

/* The downgrade of issue 13, run through the proxy: a client with alice's ticket offers
 * Kerberos, with its AP-REQ, and NTLM; the attacker rewrites the NegTokenInit to offer NTLM alone
 * without an optimistic token, so that the server answers naming NTLM (and the client's SPNEGO
 * then starts NTLM with a NEGOTIATE of its own: no forged NEGOTIATE is needed), and renames
 * MsvAvTimestamp in the server's CHALLENGE, so that gss-ntlmssp sends no NTLM MIC and SPNEGO
 * exchanges no mechListMIC (NTLM was the first mechanism the server was offered).
 * On commit 4f7be19 both sides authenticated over NTLM and exchanged the messages (the server
 * never authenticated to the client). Now the client refuses SPNEGO's move to NTLM before it
 * produces an NTLM message (NEGIO_ERR_POLICY); a client that allows the fallback goes through
 * NTLM and the transcripts differ (NEGIO_ERR_INTEGRITY). */
static void kerberos_to_ntlm_downgrade_on_the_path_is_refused(void **state)
{
    (void)state;
    size_t n;
    uint8_t *init = proxy_frame_make(PROXY_HANDSHAKE, 0, 0, negtokeninit_ntlm_only,
                                     sizeof(negtokeninit_ntlm_only), &n);
    for (int allow = 0; allow <= 1; allow++) {
        set_where("NegTokenInit rewritten to [ntlm], CHALLENGE's timestamp renamed, client %s",
                  allow ? "allowing the NTLM fallback" : "with the default policy");
        edit_rec ts = {0};
        proxy_rule r[2] = {with_bytes(rule(PROXY_C2S, PROXY_HANDSHAKE, 0, PROXY_REPLACE), init, n),
                           edit_rule(PROXY_S2C, -1, edit_rename_timestamp, &ts)};
        uint16_t pport;
        proxy *px = px_start(NEGIO_LEVEL_SIGN, 29, &pport);
        int id0 = proxy_add_rule(px, &r[0]);
        (void)proxy_add_rule(px, &r[1]);
        negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
        if (allow)
            assert_int_equal(negio_config_set_allow_ntlm_fallback(cc, 1), 0);
        const msgspec *m = genuine_at(NEGIO_LEVEL_SEAL);
        conn_out o = conn_run(px, pport, 0, cc, m, NMSGS);
        negio_config_del(cc);
        CHECK(&o, proxy_fired(px, id0) == 1);
        uint8_t *f = NULL, *auth = NULL;
        size_t alen = 0;
        int client_ntlm = sent_ntlm(px, PROXY_C2S, 1, NULL, NULL, NULL);
        int got_auth = sent_ntlm(px, PROXY_C2S, 3, &f, &auth, &alen);
        const uint8_t *avf = got_auth ? test_ntlm_av(auth, auth + alen, TEST_AV_FLAGS) : NULL;
        int auth_mic = avf != NULL && (test_le32(avf + 4) & TEST_AV_FLAG_MIC) != 0;
        int server_chal = sent_ntlm(px, PROXY_S2C, 2, NULL, NULL, NULL);
        size_t rn;
        uint8_t *resp = proxy_frame_copy(px, 0, PROXY_S2C, 0, &rn);
        static const uint8_t oid_ntlm[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                           0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
        int server_ntlm = resp != NULL && rn > HDR && resp[1] == PROXY_HANDSHAKE &&
                          memmem(resp + HDR, rn - HDR, oid_ntlm, sizeof(oid_ntlm)) != NULL;
        free(resp);
        free(f);
        px_stop(px);
        check_refused(&o);
        /* the server took the bait: its first answer selects NTLM */
        CHECK(&o, server_ntlm);
        if (!allow) {
            CHECK(&o, o.c->code == NEGIO_ERR_POLICY && strstr(o.c->detail, "downgrade") != NULL);
            CHECK(&o, !client_ntlm); /* no NTLM message left the client */
            CHECK(&o, o.s->code == NEGIO_ERR_PEER);
        } else {
            /* the attack went through NTLM as on 4f7be19: the timestamp renamed, so the client's
             * AUTHENTICATE carries no MIC; only the transcript can catch it */
            CHECK(&o, server_chal && ts.done == 1 && got_auth && !auth_mic);
            CHECK(&o, o.c->code == NEGIO_ERR_INTEGRITY || o.s->code == NEGIO_ERR_INTEGRITY);
            /* and the other side learnt it from that side's report */
            CHECK(&o, integrity_or_report(o.c->code) && integrity_or_report(o.s->code));
        }
    }
    free(init);
}

/* NTLM's negotiation flags changed on the path: KEY_EXCH cleared in NEGOTIATE and CHALLENGE,
 * DATAGRAM set in both, and both changes at once. Inside SPNEGO with the timestamp trick (no
 * NTLM MIC, see above), and on raw NTLM, where nothing binds the NEGOTIATE message anyway. On
 * commit 4f7be19 each of these authenticated both sides (only clearing the 128/56-bit flags was
 * caught, by negio's key-strength check). */
static void ntlm_flag_edits_on_the_path_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint32_t clear, set;
    } edits[] = {
        {"KEY_EXCH cleared", TEST_NTLM_KEY_EXCH, 0},
        {"DATAGRAM set", 0, TEST_NTLM_DATAGRAM},
        {"KEY_EXCH cleared and DATAGRAM set", TEST_NTLM_KEY_EXCH, TEST_NTLM_DATAGRAM},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        for (int trick = 0; trick <= 1; trick++) {
            set_where("NEGOTIATE and CHALLENGE flags: %s%s", edits[i].what,
                      trick ? ", CHALLENGE's timestamp renamed" : "");
            edit_rec neg = {.ntlm = 1, .clear = edits[i].clear, .set = edits[i].set};
            edit_rec chal = {.ntlm = 2, .clear = edits[i].clear, .set = edits[i].set};
            edit_rec ts = {0};
            proxy_rule r[3] = {edit_rule(PROXY_C2S, 0, edit_ntlm_flags, &neg),
                               edit_rule(PROXY_S2C, 0, edit_ntlm_flags, &chal),
                               edit_rule(PROXY_S2C, 0, edit_rename_timestamp, &ts)};
            edit_rec *recs[3] = {&neg, &chal, &ts};
            negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
            (void)rewritten(r, recs, trick ? 3 : 2, cc);
            negio_config_del(cc);
        }
    }
}

/* Handshake bytes that no mechanism protects, changed on the path, each where it exists: a
 * SPNEGO length re-encoded in long form (the same value: BER allows it, DER does not), in either
 * direction; the negState of a NegTokenResp; a reserved bit of the Kerberos AP-REQ's ap-options;
 * the ticket's service name, which travels in the clear, relabelled negio/localhost ->
 * other/localhost (the ticket's ciphertext is unchanged, so it still decrypts with negio's key);
 * the Version field of an NTLM NEGOTIATE ([MS-NLMP] 2.2.2.10: informational). On commit 4f7be19
 * each of these authenticated both sides (the raw NTLM Version field went unnoticed too). */
static void unprotected_handshake_bytes_changed_on_the_path_are_refused(void **state)
{
    (void)state;
    int spnego = cur_path == PATH_NEG_KERBEROS || cur_path == PATH_NEG_NTLM;
    int krb = test_path_mech(cur_path) == NEGIO_MECH_KERBEROS;
    negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
    if (spnego) {
        /* the NegTokenInit: its mechTypes [0] (element 4: 60, OID, a0, 30, a0) */
        set_where("client's NegTokenInit: mechTypes length in long form");
        edit_rec e = {.element = 4};
        proxy_rule r = edit_rule(PROXY_C2S, 0, edit_der_long_form, &e);
        edit_rec *recs[1] = {&e};
        (void)rewritten(&r, recs, 1, cc);
        /* the server's first NegTokenResp: its negState [0] (element 2: a1, 30, a0) */
        set_where("server's NegTokenResp: negState length in long form");
        e = (edit_rec){.element = 2};
        r = edit_rule(PROXY_S2C, 0, edit_der_long_form, &e);
        (void)rewritten(&r, recs, 1, cc);
        /* negState: accept-completed <-> accept-incomplete, and request-mic */
        static const uint8_t state_el[] = {0xa0, 0x03, 0x0a, 0x01};
        for (int d = 0; d < 2; d++) {
            for (uint8_t x = 1; x <= 3; x += 2) {
                int k = d == PROXY_C2S ? 1 : 0; /* the client's first NegTokenResp */
                if (d == PROXY_C2S && !path_is_ntlm())
                    continue; /* negotiate->kerberos: the client sends no NegTokenResp */
                set_where("%s NegTokenResp #%d: negState xor %u", d ? "server's" : "client's", k,
                          x);
                e = (edit_rec){.find = state_el, .nfind = 4, .at = 4, .mask = x};
                r = edit_rule((proxy_dir)d, k, edit_patch, &e);
                (void)rewritten(&r, recs, 1, cc);
            }
        }
    }
    if (krb) {
        /* ap-options ([RFC 4120] 5.5.1): a BIT STRING of 32 bits after its unused-bits byte;
         * bit 0 (0x80 of the first byte) is reserved */
        static const uint8_t ap_options[] = {0xa2, 0x07, 0x03, 0x05, 0x00};
        set_where("AP-REQ ap-options: reserved bit 0 set");
        edit_rec e = {.find = ap_options, .nfind = sizeof(ap_options), .at = 5, .mask = 0x80};
        proxy_rule r = edit_rule(PROXY_C2S, 0, edit_patch, &e);
        edit_rec *recs[1] = {&e};
        (void)rewritten(&r, recs, 1, cc);
        /* the ticket's sname, a SEQUENCE OF GeneralString: "negio", "localhost" */
        static const uint8_t sname[] = {0x1b, 0x05, 'n', 'e', 'g', 'i', 'o', 0x1b, 0x09,
                                        'l',  'o',  'c', 'a', 'l', 'h', 'o', 's',  't'};
        set_where("ticket sname relabelled negio/localhost -> other/localhost");
        e = (edit_rec){.find = sname,
                       .nfind = sizeof(sname),
                       .at = 2,
                       .put = (const uint8_t *)"other",
                       .nput = 5};
        r = edit_rule(PROXY_C2S, 0, edit_patch, &e);
        (void)rewritten(&r, recs, 1, cc);
    } else {
        /* NEGOTIATE: Version (8 bytes at 32), present with NEGOTIATE_VERSION: ProductMajor */
        set_where("NEGOTIATE's Version field changed");
        edit_rec e = {.ntlm = 1, .at = 32, .mask = 0x01};
        proxy_rule r = edit_rule(PROXY_C2S, 0, edit_patch, &e);
        edit_rec *recs[1] = {&e};
        (void)rewritten(&r, recs, 1, cc);
    }
    negio_config_del(cc);
}

/* The client side of forged_handshake_error_with_a_challenge_leaves_the_client_alive, in a
 * process of its own (launcher_main): a client engine, one connection through the proxy at PPORT.
 * Exits 0 if the client failed with NEGIO_ERR_PEER, without authenticating or delivering anything.
 */
static void hostile_error_client(uint16_t pport)
{
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL); /* a crash must reach the parent as the signal */
    world *w = calloc(1, sizeof(*w));
    negio_engine_options o = {.loops = 1,
                              .workers = 2,
                              .handshake_timeout_ms = 10000,
                              .callbacks = {.on_authenticated = cb_authenticated,
                                            .on_message = cb_message,
                                            .on_closed = cb_closed},
                              .user = w};
    negio_econn *h;
    side_rec *c = &w->recs[0];
    negio_config *cc = test_client_config(cur_path);
    if (w == NULL || negio_engine_new(&w->e, &o) != NEGIO_OK ||
        negio_engine_connect(w->e, "127.0.0.1", pport, cc, c, &h) != NEGIO_OK)
        _exit(10);
    w->nrecs = 1;
    const msgspec *m = genuine_at(NEGIO_LEVEL_SEAL);
    for (int i = 0; i < NMSGS; i++)
        (void)negio_engine_send(w->e, h, m[i].data, m[i].len, m[i].level);
    WAIT_UNTIL(c->closed, WAIT_MS);
    fprintf(stderr, "[%s] client process: closed %d, %s %s: %s\n", test_path_name(cur_path),
            c->closed, negio_close_reason_name(c->reason), negio_err_name(c->code), c->detail);
    int ok = c->closed && c->code == NEGIO_ERR_PEER && !c->authenticated && c->nmsgs == 0;
    negio_econn_unref(h);
    negio_engine_del(w->e);
    negio_config_del(cc);
    _exit(ok ? 0 : 11);
}

/* The process that starts hostile_error_client processes: forked by main() before this process
 * has threads, it forks one client process per request and answers with its wait status. (A
 * client forked from the test process itself, whose engines have threads, can inherit a lock
 * that one of them held at that moment and hang on it: it did, once in three runs under ASan.) */
typedef struct launch {
    uint16_t port;
    test_path path;
} launch;
typedef struct launched {
    int status, timed_out;
} launched;
static int launcher_cmd = -1, launcher_ans = -1;

static void launcher_main(int cmd, int ans)
{
    launch q;
    while (read(cmd, &q, sizeof(q)) == (ssize_t)sizeof(q)) {
        launched a = {0, 0};
        pid_t pid = fork();
        if (pid == 0) {
            close(cmd);
            close(ans);
            cur_path = q.path;
            hostile_error_client(q.port);
        }
        if (pid < 0)
            a.status = 99 << 8;
        else
            a.status = wait_child(pid, 60000, &a.timed_out);
        if (write(ans, &a, sizeof(a)) != (ssize_t)sizeof(a))
            break;
    }
    _exit(0); /* the realm and everything else belong to the test process */
}

static void launcher_start(void)
{
    int cmd[2], ans[2];
    if (pipe(cmd) != 0 || pipe(ans) != 0)
        abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        close(cmd[1]);
        close(ans[0]);
        launcher_main(cmd[0], ans[1]);
    }
    close(cmd[0]);
    close(ans[1]);
    launcher_cmd = cmd[1]; /* closed at exit: the launcher then ends */
    launcher_ans = ans[0];
}

/* Issue 13, result 1: a HANDSHAKE_ERROR in place of the server's CHALLENGE, carrying an NTLM
 * CHALLENGE whose target name is empty while its TARGET_TYPE flags announce one (raw on the ntlm
 * path, inside a NegTokenResp on negotiate->ntlm). On commit 4f7be19 the client handed it to
 * gss-ntlmssp 1.2.0, which crashed the client process (SIGSEGV). An error frame's token never
 * reaches NTLM now: the client survives and reports the peer's failure (NEGIO_ERR_PEER). The
 * Kerberos paths get the same frame (inside a NegTokenResp on negotiate->kerberos), where it must
 * end the same way. The
 * client runs in a process of its own (see launcher_main), so that a crash is seen as its
 * signal. */
static void forged_handshake_error_with_a_challenge_leaves_the_client_alive(void **state)
{
    (void)state;
    uint8_t chal[64], spnego[128];
    size_t clen = test_ntlm_challenge(chal, 0), tlen = clen;
    const uint8_t *tok = chal;
    if (cur_path == PATH_NEG_NTLM || cur_path == PATH_NEG_KERBEROS) {
        tlen = test_wrap_negtokenresp(spnego, chal, clen);
        tok = spnego;
    }
    size_t blen, flen;
    uint8_t *body = test_hs_error_body(tok, tlen, "forged", &blen);
    uint8_t *frame = proxy_frame_make(PROXY_HS_ERROR, 0, 0, body, blen, &flen);
    set_where("server's CHALLENGE replaced by a HANDSHAKE_ERROR carrying one with an empty target");
    uint16_t pport;
    proxy *px = px_start(NEGIO_LEVEL_SIGN, 31, &pport);
    proxy_rule r = with_bytes(rule(PROXY_S2C, PROXY_HANDSHAKE, 0, PROXY_REPLACE), frame, flen);
    int id = proxy_add_rule(px, &r);
    launch q = {pport, cur_path};
    launched a;
    assert_int_equal(write(launcher_cmd, &q, sizeof(q)), (ssize_t)sizeof(q));
    assert_int_equal(read(launcher_ans, &a, sizeof(a)), (ssize_t)sizeof(a));
    char what[600];
    snprintf(what, sizeof(what), "[%s, %s] the client process", test_path_name(cur_path), where);
    check_child_exit(a.status, a.timed_out, what);
    /* the server's side: never authenticated, nothing delivered, ended */
    uint16_t up = proxy_upstream_port(px, 0);
    assert_true(up != 0);
    WAIT_UNTIL(server_closed(up), WAIT_MS);
    pthread_mutex_lock(&lock);
    conn_out o = {.s = find_server_rec(up)};
    side_rec none = {0};
    o.c = &none;
    pthread_mutex_unlock(&lock);
    CHECK(&o, proxy_fired(px, id) == 1);
    CHECK(&o, o.s != NULL && o.s->closed && !o.s->authenticated && o.s->nmsgs == 0);
    CHECK(&o, o.s->reason != NEGIO_CLOSE_CLEAN);
    px_stop(px);
    free(frame);
    free(body);
}

/* ---- 4. per-message protection ------------------------------------------------------------- */

static void protection(negio_level L)
{
    const int other = L == NEGIO_LEVEL_SIGN ? NEGIO_LEVEL_SEAL : NEGIO_LEVEL_SIGN;
    size_t n, nm;
    uint8_t *none = proxy_frame_make(PROXY_DATA, NEGIO_LEVEL_NONE, 0, "EVIL injected", 13, &n);
    uint8_t *more = proxy_frame_make(PROXY_DATA, NEGIO_LEVEL_NONE, 0x01, "EVIL", 4, &nm);
    char relabelled[64];
    snprintf(relabelled, sizeof(relabelled), "DATA #1 relabelled %s",
             negio_level_name((negio_level)other));
    const negio_level S = NEGIO_LEVEL_SIGN;
    const attack_case cases[] = {
        /* an injected level-none frame, to a receiver whose minimum is sign, then seal */
        {"none frame injected before DATA #1, server minimum sign", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), none, n),
         fatal(SIDE_SERVER, NEGIO_ERR_DOWNGRADE, 1)},
        {"none frame injected before DATA #1, server minimum seal", NEGIO_LEVEL_SEAL,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), none, n),
         fatal(SIDE_SERVER, NEGIO_ERR_DOWNGRADE, 1)},
        {"none frame injected before the server's DATA #1", S,
         with_bytes(rule(PROXY_S2C, PROXY_DATA, 1, PROXY_INJECT_BEFORE), none, n),
         fatal(SIDE_CLIENT, NEGIO_ERR_DOWNGRADE, 1)},
        {"none frame with MORE injected before DATA #0", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 0, PROXY_INJECT_BEFORE), more, nm),
         fatal(SIDE_SERVER, NEGIO_ERR_DOWNGRADE, 0)},
        /* the level byte rewritten: to none (the minimum catches it), to the other protected
         * level (the MIC or the sealed header copy catches it) */
        {"DATA #1 relabelled none", S, flip(PROXY_C2S, PROXY_DATA, 1, 2, (uint8_t)L),
         fatal(SIDE_SERVER, NEGIO_ERR_DOWNGRADE, 1)},
        {relabelled, S, flip(PROXY_C2S, PROXY_DATA, 1, 2, (uint8_t)(L ^ other)),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"server's DATA #1 relabelled none", S, flip(PROXY_S2C, PROXY_DATA, 1, 2, (uint8_t)L),
         fatal(SIDE_CLIENT, NEGIO_ERR_DOWNGRADE, 1)},
        /* payload and header covered */
        {"DATA #1 last byte changed", S, flip(PROXY_C2S, PROXY_DATA, 1, -1, 0x20),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 flags set to MORE", S, flip(PROXY_C2S, PROXY_DATA, 1, 3, 0x01),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 type changed to CLOSE", S, flip(PROXY_C2S, PROXY_DATA, 1, 1, 4 ^ 5),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"server's DATA #1 last byte changed", S, flip(PROXY_S2C, PROXY_DATA, 1, -1, 0x20),
         fatal(SIDE_CLIENT, NEGIO_ERR_INTEGRITY, 1)},
        /* the POLICY frames are protected the same way */
        {"client's POLICY last byte changed", S, flip(PROXY_C2S, PROXY_POLICY, 0, -1, 0x01),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 0)},
        {"server's POLICY last byte changed", S, flip(PROXY_S2C, PROXY_POLICY, 0, -1, 0x01),
         fatal(SIDE_CLIENT, NEGIO_ERR_INTEGRITY, 0)},
        /* replay, reorder, drop */
        {"DATA #0 duplicated", S, rule(PROXY_C2S, PROXY_DATA, 0, PROXY_DUPLICATE),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"server's DATA #1 duplicated", S, rule(PROXY_S2C, PROXY_DATA, 1, PROXY_DUPLICATE),
         fatal(SIDE_CLIENT, NEGIO_ERR_INTEGRITY, 2)},
        {"DATA #0 and #1 swapped", S, rule(PROXY_C2S, PROXY_DATA, 0, PROXY_SWAP_NEXT),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 0)},
        {"DATA #1 and #2 swapped", S, rule(PROXY_C2S, PROXY_DATA, 1, PROXY_SWAP_NEXT),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #0 dropped", S, rule(PROXY_C2S, PROXY_DATA, 0, PROXY_DROP),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 0)},
        {"DATA #1 dropped", S, rule(PROXY_C2S, PROXY_DATA, 1, PROXY_DROP),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"server's DATA #0 dropped", S, rule(PROXY_S2C, PROXY_DATA, 0, PROXY_DROP),
         fatal(SIDE_CLIENT, NEGIO_ERR_INTEGRITY, 0)},
        /* reflection: a side's own frame sent back to it */
        {"client's DATA #0 reflected to the client", S,
         rule(PROXY_C2S, PROXY_DATA, 0, PROXY_REFLECT), fatal(SIDE_CLIENT, NEGIO_ERR_INTEGRITY, 0)},
        /* (the client's later messages may arrive before the reflected one) */
        {"server's DATA #0 reflected to the server", S,
         rule(PROXY_S2C, PROXY_DATA, 0, PROXY_REFLECT),
         up_to(fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1), NMSGS)},
        /* (a second POLICY: refused before its MIC) */
        {"client's POLICY reflected to the client", S,
         rule(PROXY_C2S, PROXY_POLICY, 0, PROXY_REFLECT),
         fatal_or(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, NEGIO_ERR_INTEGRITY, 0)},
        /* tokens cut to 0, 1, 15, 16, 17 bytes and to one byte short, the length made to match */
        {"DATA #1 body cut to 0 bytes", S,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_CUT_BODY), 0),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 body cut to 1 bytes", S,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_CUT_BODY), 1),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 body cut to 15 bytes", S,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_CUT_BODY), 15),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 body cut to 16 bytes", S,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_CUT_BODY), 16),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 body cut to 17 bytes", S,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_CUT_BODY), 17),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"DATA #1 body cut to -1 bytes", S,
         with_keep(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_CUT_BODY), -1),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"server's DATA #1 body cut to 16 bytes", S,
         with_keep(rule(PROXY_S2C, PROXY_DATA, 1, PROXY_CUT_BODY), 16),
         fatal(SIDE_CLIENT, NEGIO_ERR_INTEGRITY, 1)},
    };
    RUN_ATTACKS(cases, L);
    free(more);
    free(none);

    /* bytes of the body flipped: seeded sample of offsets (test_tamper flips every offset in
     * memory; here each flip costs a connection) */
    unsigned seed = 1000u + (unsigned)cur_path * 10u + (unsigned)L;
    for (int i = 0; i < 8; i++) {
        long off = HDR + (long)(test_rand(&seed) % 40u); /* within the shortest body */
        uint8_t x = (uint8_t)(1u << (test_rand(&seed) % 8u));
        set_where("DATA #1 byte %ld xor 0x%02x", off, x);
        proxy_rule r = flip(PROXY_C2S, PROXY_DATA, 1, off, x);
        attack(NEGIO_LEVEL_SIGN, L, &r, 1, fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1));
    }

    /* a frame spliced in from another connection (same user, same service, same position in
     * the sequence: only the keys differ), in both directions */
    for (int d = 0; d < 2; d++) {
        set_where("%s DATA #0 replaced by the one of another connection",
                  d ? "server's" : "client's");
        uint16_t pport;
        proxy *px = px_start(NEGIO_LEVEL_SIGN, 11, &pport);
        proxy_rule rec = on_conn(rule((proxy_dir)d, PROXY_DATA, 0, PROXY_RECORD), 0);
        proxy_rule spl = on_conn(rule((proxy_dir)d, PROXY_DATA, 0, PROXY_SPLICE), 1);
        int id0 = proxy_add_rule(px, &rec), id1 = proxy_add_rule(px, &spl);
        negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
        const msgspec *m = genuine_at(L);
        conn_out a = conn_run(px, pport, 0, cc, m, NMSGS);
        expect intact = {0};
        check_outcome(&a, m, NMSGS, &intact);
        conn_out b = conn_run(px, pport, 1, cc, m, NMSGS);
        negio_config_del(cc);
        CHECK(&b, proxy_fired(px, id0) == 1 && proxy_fired(px, id1) == 1);
        expect ex = fatal(d ? SIDE_CLIENT : SIDE_SERVER, NEGIO_ERR_INTEGRITY, 0);
        check_outcome(&b, m, NMSGS, &ex);
        px_stop(px);
    }
}

static void protection_sign(void **state)
{
    (void)state;
    protection(NEGIO_LEVEL_SIGN);
}

static void protection_seal(void **state)
{
    (void)state;
    protection(NEGIO_LEVEL_SEAL);
}

/* What level none does not protect (PROTOCOL.md section 8), shown rather than assumed: to a
 * receiver whose minimum is none, an injected frame is delivered, a dropped one leaves the
 * protected close clean (level-none frames take no sequence number), and a signed frame can be
 * rewritten as a level-none frame with the same payload and is delivered as such; only the next
 * protected frame then fails. Every delivered message is reported with its true level, none. */
static void level_none_protects_nothing(void **state)
{
    (void)state;
    const msgspec *g = genuine_at(NEGIO_LEVEL_NONE);
    size_t n;
    uint8_t *evil = proxy_frame_make(PROXY_DATA, NEGIO_LEVEL_NONE, 0, "EVIL injected", 13, &n);
    negio_config *cc = client_cfg(NEGIO_LEVEL_NONE);
    uint16_t pport;

    set_where("minimum none: a level-none frame injected");
    proxy *px = px_start(NEGIO_LEVEL_NONE, 19, &pport);
    proxy_rule r = with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), evil, n);
    int id = proxy_add_rule(px, &r);
    conn_out o = conn_run_ex(px, pport, 0, cc, g, NMSGS, NMSGS, NMSGS + 1);
    CHECK(&o, proxy_fired(px, id) == 1);
    CHECK(&o, o.s->nmsgs == NMSGS + 1 && o.s->msgs[1].level == NEGIO_LEVEL_NONE);
    CHECK(&o, o.s->msgs[1].sum == checksum_update(0, (const uint8_t *)"EVIL injected", 13));
    CHECK(&o, o.s->reason == NEGIO_CLOSE_CLEAN && o.c->reason == NEGIO_CLOSE_CLEAN);
    px_stop(px);

    set_where("minimum none: a level-none frame dropped");
    px = px_start(NEGIO_LEVEL_NONE, 19, &pport);
    r = rule(PROXY_C2S, PROXY_DATA, 1, PROXY_DROP);
    id = proxy_add_rule(px, &r);
    o = conn_run_ex(px, pport, 0, cc, g, NMSGS, NMSGS, NMSGS - 1);
    CHECK(&o, proxy_fired(px, id) == 1);
    CHECK(&o, o.s->nmsgs == NMSGS - 1);
    CHECK(&o, o.s->msgs[1].sum == checksum_update(0, g[2].data, g[2].len));
    CHECK(&o, o.s->reason == NEGIO_CLOSE_CLEAN && o.c->reason == NEGIO_CLOSE_CLEAN);
    px_stop(px);

    set_where("minimum none: a signed frame stripped to level none");
    const msgspec *sg = genuine_at(NEGIO_LEVEL_SIGN);
    uint8_t *stripped =
        proxy_frame_make(PROXY_DATA, NEGIO_LEVEL_NONE, 0, sg[1].data, sg[1].len, &n);
    px = px_start(NEGIO_LEVEL_NONE, 19, &pport);
    r = with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_REPLACE), stripped, n);
    id = proxy_add_rule(px, &r);
    o = conn_run(px, pport, 0, cc, sg, NMSGS);
    CHECK(&o, proxy_fired(px, id) == 1);
    CHECK(&o, o.s->nmsgs == 2 && o.s->msgs[0].level == NEGIO_LEVEL_SIGN);
    CHECK(&o, o.s->msgs[1].level == NEGIO_LEVEL_NONE &&
                  o.s->msgs[1].sum == checksum_update(0, sg[1].data, sg[1].len));
    CHECK(&o, o.s->reason == NEGIO_CLOSE_ERROR && o.s->code == NEGIO_ERR_INTEGRITY);
    if (verbose)
        print_message("[%s, %s] server: %d messages, then %s: %s\n", test_path_name(cur_path),
                      where, o.s->nmsgs, negio_err_name(o.s->code), o.s->detail);
    px_stop(px);
    free(stripped);
    free(evil);
    negio_config_del(cc);
}

/* ---- 5. close ------------------------------------------------------------------------------ */

static void close_cases(void **state)
{
    (void)state;
    const negio_level L = NEGIO_LEVEL_SEAL, S = NEGIO_LEVEL_SIGN;
    size_t n;

    /* forged closes: unprotected, with a normal status and a rejection; signed, with a "MIC" of
     * garbage */
    uint8_t *fc[2], *sc[2];
    size_t nfc[2], nsc[2];
    for (uint8_t status = 0; status <= 1; status++) {
        uint8_t body[7] = {0, 0, 0, status, 'b', 'y', 'e'};
        fc[status] =
            proxy_frame_make(PROXY_CLOSE, NEGIO_LEVEL_NONE, 0, body, sizeof(body), &nfc[status]);
        uint8_t sbody[4 + 16 + 7] = {0, 0, 0, 16};
        memset(sbody + 4, 0x41, 16);
        memcpy(sbody + 20, body, sizeof(body));
        sc[status] =
            proxy_frame_make(PROXY_CLOSE, NEGIO_LEVEL_SIGN, 0, sbody, sizeof(sbody), &nsc[status]);
    }
    static const uint8_t hse_body[] = {0, 0, 0, 0, 'b', 'y', 'e'};
    uint8_t *hse = proxy_frame_make(PROXY_HS_ERROR, 0, 0, hse_body, sizeof(hse_body), &n);
    /* the side that closed locally, or saw a verified CLOSE and answered it, may end cleanly */
    expect server_cut = fatal(SIDE_SERVER, NEGIO_ERR_TRUNCATED, NMSGS);
    server_cut.other_clean = 1;
    expect client_cut = fatal(SIDE_CLIENT, NEGIO_ERR_TRUNCATED, NMSGS);
    client_cut.other_clean = 1;
    const attack_case cases[] = {
        /* the protected close removed: the server sees the end of the stream without it */
        {"client's CLOSE dropped", S, rule(PROXY_C2S, PROXY_CLOSE, 0, PROXY_DROP), server_cut},
        {"client's CLOSE cut in half", S,
         with_keep(rule(PROXY_C2S, PROXY_CLOSE, 0, PROXY_TRUNCATE), 20), server_cut},
        /* every side answers CLOSE (PROTOCOL.md 4.5): cutting the answer leaves the side that
         * closed first with a truncation, never a clean close */
        {"server's answering CLOSE dropped", S, rule(PROXY_S2C, PROXY_CLOSE, 0, PROXY_DROP),
         client_cut},
        {"unprotected CLOSE (status 0) injected before DATA #1", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), fc[0], nfc[0]),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 1)},
        {"unprotected CLOSE (status 0) injected to the client", S,
         with_bytes(rule(PROXY_S2C, PROXY_DATA, 1, PROXY_INJECT_BEFORE), fc[0], nfc[0]),
         fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 1)},
        {"signed CLOSE with a forged MIC (status 0) injected before DATA #1", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), sc[0], nsc[0]),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        {"unprotected CLOSE (status 1) injected before DATA #1", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), fc[1], nfc[1]),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 1)},
        {"unprotected CLOSE (status 1) injected to the client", S,
         with_bytes(rule(PROXY_S2C, PROXY_DATA, 1, PROXY_INJECT_BEFORE), fc[1], nfc[1]),
         fatal(SIDE_CLIENT, NEGIO_ERR_PROTOCOL, 1)},
        {"signed CLOSE with a forged MIC (status 1) injected before DATA #1", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), sc[1], nsc[1]),
         fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1)},
        /* an unauthenticated HANDSHAKE_ERROR after establishment */
        {"HANDSHAKE_ERROR injected after establishment", S,
         with_bytes(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_INJECT_BEFORE), hse, n),
         fatal(SIDE_SERVER, NEGIO_ERR_PROTOCOL, 1)},
    };
    RUN_ATTACKS(cases, L);
    for (int status = 0; status <= 1; status++) {
        free(fc[status]);
        free(sc[status]);
    }
    free(hse);

    /* a real protected close of another connection, in place of DATA #1 */
    set_where("CLOSE of another connection spliced in");
    uint16_t pport;
    proxy *px = px_start(NEGIO_LEVEL_SIGN, 13, &pport);
    proxy_rule rec = on_conn(rule(PROXY_C2S, PROXY_CLOSE, 0, PROXY_RECORD), 0);
    proxy_rule spl = on_conn(rule(PROXY_C2S, PROXY_DATA, 1, PROXY_SPLICE), 1);
    spl.slot = rec.slot = 2;
    int id0 = proxy_add_rule(px, &rec), id1 = proxy_add_rule(px, &spl);
    negio_config *cc = client_cfg(NEGIO_LEVEL_SIGN);
    const msgspec *m = genuine_at(L);
    conn_out a = conn_run(px, pport, 0, cc, m, NMSGS);
    expect intact = {0};
    check_outcome(&a, m, NMSGS, &intact);
    conn_out b = conn_run(px, pport, 1, cc, m, NMSGS);
    negio_config_del(cc);
    CHECK(&b, proxy_fired(px, id0) >= 1 && proxy_fired(px, id1) == 1);
    expect ex = fatal(SIDE_SERVER, NEGIO_ERR_INTEGRITY, 1);
    check_outcome(&b, m, NMSGS, &ex);
    px_stop(px);
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void)
{
    const char *repro = getenv("NEGIO_PROXY_REPRO");
    if (repro != NULL && strcmp(repro, "listen") == 0)
        return repro_listen_race();
    test_realm_get();
    launcher_start(); /* before any thread */
    verbose = getenv("NEGIO_TEST_VERBOSE") != NULL;
#define PER_PATH(fn) TEST_PER_PATH(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listening_twice_on_one_engine_does_not_crash),
        PER_PATH(fragmentation_and_delay),
        {"write_over_high_water_before_establishment_does_not_stall_the_handshake/kerberos",
         write_over_high_water_before_establishment_does_not_stall_the_handshake, fx_setup,
         fx_teardown, &test_path_ids[PATH_KERBEROS]},
        PER_PATH(framing),
        PER_PATH(handshake),
        {"negotiate_downgrade/negotiate->kerberos", negotiate_downgrade, fx_setup, fx_teardown,
         &test_path_ids[PATH_NEG_KERBEROS]},
        {"kerberos_to_ntlm_downgrade_on_the_path_is_refused/negotiate->kerberos",
         kerberos_to_ntlm_downgrade_on_the_path_is_refused, fx_setup, fx_teardown,
         &test_path_ids[PATH_NEG_KERBEROS]},
        {"ntlm_flag_edits_on_the_path_are_refused/negotiate->ntlm",
         ntlm_flag_edits_on_the_path_are_refused, fx_setup, fx_teardown,
         &test_path_ids[PATH_NEG_NTLM]},
        {"ntlm_flag_edits_on_the_path_are_refused/ntlm", ntlm_flag_edits_on_the_path_are_refused,
         fx_setup, fx_teardown, &test_path_ids[PATH_NTLM]},
        PER_PATH(unprotected_handshake_bytes_changed_on_the_path_are_refused),
        PER_PATH(forged_handshake_error_with_a_challenge_leaves_the_client_alive),
        {"raw_ntlm_negotiate_flags_cannot_be_downgraded_on_the_path/ntlm",
         raw_ntlm_negotiate_flags_cannot_be_downgraded_on_the_path, fx_setup, fx_teardown,
         &test_path_ids[PATH_NTLM]},
        PER_PATH(protection_sign),
        PER_PATH(protection_seal),
        PER_PATH(close_cases),
        PER_PATH(level_none_protects_nothing),
    };
    if (getenv("NEGIO_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("NEGIO_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
