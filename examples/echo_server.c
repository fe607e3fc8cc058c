/* A negio echo server on the engine: every authenticated client's messages come back at the
 * level they arrived at. Run inside a realm (scripts/realm.sh start DIR; . DIR/env):
 *     example_echo_server 127.0.0.1:7000
 * and stop it with Ctrl-C. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <negio/engine.h>

static negio_engine *engine;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)c;
    (void)user;
    printf("%s authenticated with %s%s\n", info->peer, negio_mech_name(info->mech),
           info->negotiated ? " (negotiated)" : "");
    return 0; /* keep the connection; a non-zero status would reject the client */
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    (void)user;
    negio_engine_send(engine, c, data, len, level); /* echo at the level it arrived */
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    (void)c;
    (void)user;
    printf("closed: %s %s %s\n", negio_close_reason_name(reason), code ? negio_err_name(code) : "",
           detail);
}

int main(int argc, char **argv)
{
    negio_engine_options opts = {
        .size = sizeof(negio_engine_options), /* the structure can grow (negio.h conventions) */
        .callbacks = {.on_authenticated = on_authenticated,
                      .on_message = on_message,
                      .on_closed = on_closed},
    };
    negio_config *cfg;
    uint16_t port;
    if (negio_engine_new(&engine, &opts) != NEGIO_OK || negio_config_new(&cfg, NEGIO_ROLE_SERVER))
        return 1;
    negio_config_set_service(cfg, "negio@localhost");
    int rc = negio_engine_listen(engine, argc > 1 ? argv[1] : "127.0.0.1:7000", cfg, &port);
    negio_config_del(cfg);
    if (rc != NEGIO_OK) {
        fprintf(stderr, "listen: %s\n", negio_strerror(rc));
        negio_engine_del(engine);
        return 1;
    }
    printf("listening on port %u\n", (unsigned)port);
    fflush(stdout);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop)
        pause();
    negio_engine_del(engine); /* graceful: protected close to every client */
    return 0;
}
