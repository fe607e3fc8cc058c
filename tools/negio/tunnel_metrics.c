/*
 * negio tunnel --metrics: the counters of every tunnel in Prometheus' text exposition format
 * (version 0.0.4): one HELP and TYPE line per family, then a sample per tunnel, labelled with
 * the tunnel's name and side.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel.h"

/* Upper bounds of the handshake latency buckets, in microseconds (and seconds, as printed). */
static const uint64_t bucket_us[HS_BUCKETS] = {1000,   2500,   5000,   10000,   25000,   50000,
                                               100000, 250000, 500000, 1000000, 2500000, 5000000};
static const char *const bucket_le[HS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"};

void metrics_observe_handshake(struct tunnel_metrics *m, uint64_t us)
{
    size_t i = 0;
    while (i < HS_BUCKETS && us > bucket_us[i])
        i++;
    atomic_fetch_add(&m->hs_bucket[i], 1);
    atomic_fetch_add(&m->hs_sum_us, us);
    atomic_fetch_add(&m->hs_count, 1);
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p != NULL && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return;
        b->p = p;
        b->cap = cap;
    }
}

static const char *side(enum tunnel_mode mode)
{
    return mode == TUNNEL_CLIENT ? "client" : "server";
}

/* Every family in turn (its HELP and TYPE lines, then one sample per tunnel, as the format
 * wants a family's lines together). */
void metrics_render(struct strbuf *b, size_t n, const struct metrics_view *v)
{
    static const char *const mechs[3] = {"none", "kerberos", "ntlm"};
    strbuf_printf(b, "# HELP negio_tunnel_connections_open Tunnels open now.\n"
                     "# TYPE negio_tunnel_connections_open gauge\n");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(b, "negio_tunnel_connections_open{tunnel=\"%s\",side=\"%s\"} %lu\n",
                      v[i].name, side(v[i].mode), atomic_load(&v[i].m->open));
    strbuf_printf(b, "# HELP negio_tunnel_connections_total Tunnels opened.\n"
                     "# TYPE negio_tunnel_connections_total counter\n");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(b, "negio_tunnel_connections_total{tunnel=\"%s\",side=\"%s\"} %lu\n",
                      v[i].name, side(v[i].mode), atomic_load(&v[i].m->total));
    strbuf_printf(b, "# HELP negio_tunnel_handshakes_total Authentications by result and "
                     "mechanism (refused: authenticated, then refused by the access list).\n"
                     "# TYPE negio_tunnel_handshakes_total counter\n");
    for (size_t i = 0; i < n; i++) {
        const char *nm = v[i].name, *sd = side(v[i].mode);
        for (int k = 0; k < 3; k++)
            strbuf_printf(b,
                          "negio_tunnel_handshakes_total{tunnel=\"%s\",side=\"%s\",result=\"ok\","
                          "mech=\"%s\"} %lu\n",
                          nm, sd, mechs[k], atomic_load(&v[i].m->hs_ok[k]));
        strbuf_printf(b,
                      "negio_tunnel_handshakes_total{tunnel=\"%s\",side=\"%s\",result=\"failed\","
                      "mech=\"unknown\"} %lu\n",
                      nm, sd, atomic_load(&v[i].m->hs_failed));
        strbuf_printf(b,
                      "negio_tunnel_handshakes_total{tunnel=\"%s\",side=\"%s\",result=\"refused\","
                      "mech=\"any\"} %lu\n",
                      nm, sd, atomic_load(&v[i].m->hs_refused));
    }
    strbuf_printf(b, "# HELP negio_tunnel_bytes_total Application bytes relayed (from_peer: "
                     "from the negio peer to the plain socket; to_peer: the other way).\n"
                     "# TYPE negio_tunnel_bytes_total counter\n");
    for (size_t i = 0; i < n; i++) {
        strbuf_printf(b,
                      "negio_tunnel_bytes_total{tunnel=\"%s\",side=\"%s\",direction=\"from_peer\"}"
                      " %lu\n",
                      v[i].name, side(v[i].mode), atomic_load(&v[i].m->bytes_in));
        strbuf_printf(b,
                      "negio_tunnel_bytes_total{tunnel=\"%s\",side=\"%s\",direction=\"to_peer\"} "
                      "%lu\n",
                      v[i].name, side(v[i].mode), atomic_load(&v[i].m->bytes_out));
    }
    strbuf_printf(b, "# HELP negio_tunnel_handshake_seconds Time from a connection's start to "
                     "its authentication, where this side sees the start (the client side).\n"
                     "# TYPE negio_tunnel_handshake_seconds histogram\n");
    for (size_t i = 0; i < n; i++) {
        const char *nm = v[i].name, *sd = side(v[i].mode);
        unsigned long cum = 0;
        for (int k = 0; k < HS_BUCKETS; k++) {
            cum += atomic_load(&v[i].m->hs_bucket[k]);
            strbuf_printf(b,
                          "negio_tunnel_handshake_seconds_bucket{tunnel=\"%s\",side=\"%s\","
                          "le=\"%s\"} %lu\n",
                          nm, sd, bucket_le[k], cum);
        }
        cum += atomic_load(&v[i].m->hs_bucket[HS_BUCKETS]);
        strbuf_printf(b,
                      "negio_tunnel_handshake_seconds_bucket{tunnel=\"%s\",side=\"%s\","
                      "le=\"+Inf\"} %lu\n",
                      nm, sd, cum);
        strbuf_printf(b, "negio_tunnel_handshake_seconds_sum{tunnel=\"%s\",side=\"%s\"} %.6f\n", nm,
                      sd, (double)atomic_load(&v[i].m->hs_sum_us) / 1e6);
        strbuf_printf(b, "negio_tunnel_handshake_seconds_count{tunnel=\"%s\",side=\"%s\"} %lu\n",
                      nm, sd, atomic_load(&v[i].m->hs_count));
    }
}
