/* negio in one process: a client and a server connector joined by memory, over each mechanism
 * path. Run with the environment of a throwaway realm (scripts/realm.sh start DIR; . DIR/env).
 * Shows who the server saw, which mechanism won, whether the server was authenticated, the
 * level each message arrived at, and the errors negio gives for refused cases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <negio/negio.h>

struct side {
    const char *name;
    negio_conn *conn;
    int err;
};

/* Processes what a side has received and prints its events. */
static void drain(struct side *s)
{
    negio_event ev;
    int rc;
    while ((rc = negio_conn_next_event(s->conn, &ev)) > 0) {
        if (ev.type == NEGIO_EV_MESSAGE)
            printf("    %s received \"%.*s\" at level %s\n", s->name, (int)ev.len,
                   (const char *)ev.data, negio_level_name(ev.level));
        else if (ev.type == NEGIO_EV_CLOSED)
            printf("    %s: peer closed cleanly\n", s->name);
    }
    if (rc < 0 && s->err == 0) {
        s->err = rc;
        printf("    %s error %s: %s\n", s->name, negio_err_name(rc),
               negio_conn_error_detail(s->conn));
    }
}

/* Moves FROM's pending output to TO; returns whether anything moved. */
static int move(struct side *from, struct side *to)
{
    size_t len;
    const uint8_t *out = negio_conn_send_buf(from->conn, &len);
    if (len == 0)
        return 0;
    negio_conn_feed(to->conn, out, len);
    negio_conn_send_done(from->conn, len);
    return 1;
}

/* Runs both connectors against each other until neither has anything to say. */
static void pump(struct side *a, struct side *b)
{
    do {
        drain(a);
        drain(b);
    } while (move(a, b) | move(b, a));
}

static negio_config *client_config(const char *mech, const char *ccache)
{
    negio_config *cfg;
    negio_mech m;
    negio_config_new(&cfg, NEGIO_ROLE_CLIENT);
    negio_mech_parse(mech, &m);
    negio_config_set_mech(cfg, m);
    negio_config_set_service(cfg, "negio@localhost");
    if (ccache != NULL)
        negio_config_set_ccache(cfg, ccache);
    return cfg;
}

static negio_config *server_config(negio_level min)
{
    negio_config *cfg;
    negio_config_new(&cfg, NEGIO_ROLE_SERVER);
    negio_config_set_service(cfg, "negio@localhost");
    negio_config_set_min_level(cfg, min);
    return cfg;
}

static int run(const char *title, negio_config *cc, negio_config *sc, int send)
{
    struct side client = {"client", NULL, 0}, server = {"server", NULL, 0};
    printf("== %s\n", title);
    if (negio_conn_new(&client.conn, cc) != 0 || negio_conn_new(&server.conn, sc) != 0)
        return 1;
    pump(&client, &server);
    negio_auth_info info = {.size = sizeof(info)};
    if (negio_conn_auth_info(server.conn, &info) == 0) {
        negio_auth_info ci = {.size = sizeof(ci)};
        negio_conn_auth_info(client.conn, &ci);
        printf("    server saw %s; mechanism %s%s; server authenticated: %s\n", info.peer,
               negio_mech_name(info.mech), info.negotiated ? " (negotiated)" : "",
               ci.server_authenticated ? "yes" : "no");
    }
    if (send && negio_conn_is_established(client.conn)) {
        static const negio_level levels[] = {NEGIO_LEVEL_NONE, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL,
                                             NEGIO_LEVEL_DEFAULT};
        static const char *texts[] = {"plain text", "signed", "sealed", "default level"};
        for (int i = 0; i < 4; i++) {
            int rc = negio_conn_write(client.conn, texts[i], strlen(texts[i]), levels[i]);
            if (rc < 0)
                printf("    client write at %s refused: %s\n", negio_level_name(levels[i]),
                       negio_strerror(rc));
        }
        negio_conn_close(client.conn, 0, "bye");
        pump(&client, &server);
    }
    int failed = client.err != 0 || server.err != 0;
    negio_conn_del(client.conn);
    negio_conn_del(server.conn);
    negio_config_del(cc);
    negio_config_del(sc);
    return failed;
}

int main(void)
{
    const char *dir = getenv("NEGIO_REALM_DIR");
    if (dir == NULL) {
        fprintf(stderr, "run inside a realm: scripts/realm.sh start DIR && . DIR/env\n");
        return 2;
    }
    char no_ticket[512];
    snprintf(no_ticket, sizeof(no_ticket), "FILE:%s/no-such-cc", dir);
    int bad = 0;
    bad |= run("kerberos (alice's ticket)", client_config("kerberos", NULL),
               server_config(NEGIO_LEVEL_NONE), 1);
    bad |= run("negotiate -> kerberos", client_config("negotiate", NULL),
               server_config(NEGIO_LEVEL_NONE), 1);
    bad |= run("negotiate -> ntlm (client without a Kerberos ticket)",
               client_config("negotiate", no_ticket), server_config(NEGIO_LEVEL_NONE), 1);
    bad |= run("ntlm", client_config("ntlm", NULL), server_config(NEGIO_LEVEL_NONE), 1);
    /* refused cases: these must fail, with a clear reason */
    int refused = 0;
    run("refused: level none against a server minimum of sign", client_config("kerberos", NULL),
        server_config(NEGIO_LEVEL_SIGN), 1);
    negio_config *cc = client_config("ntlm", NULL);
    negio_config_set_require_server_auth(cc, 1);
    refused = run("refused: NTLM client that requires server authentication", cc,
                  server_config(NEGIO_LEVEL_SIGN), 0);
    return bad || !refused ? 1 : 0;
}
