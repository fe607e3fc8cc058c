/* Connecting by a name with several addresses tries them in turn. Runs with nss_wrapper
 * (LD_PRELOAD) and a private hosts file, so that one name has both 127.0.0.1 and ::1 whatever
 * the machine's own /etc/hosts says; the server listens on one family at a time, so whichever
 * address glibc sorts first, one of the two runs must fall back to the second address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine_support.h"

/* Binds (without listening) the same port in the other family, so that the address the server
 * does not listen on refuses connections instead of reaching another test's server. Returns the
 * socket, or -1 if that port is taken there. */
static int reserve_other_family(const char *listen_on, uint16_t port)
{
    int v6 = listen_on[0] != '[';
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int rc;
    if (v6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        struct sockaddr_in6 a = {
            .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void connects_by_name(const char *listen_on)
{
    recorder srv, cli;
    negio_engine_options so = {.loops = 1}, co = {.loops = 1};
    recorder_init(&srv, &so);
    srv.echo = 1;
    negio_config *sc = test_server_config(PATH_KERBEROS);
    uint16_t port = 0;
    int rc = 0, guard = -1;
    for (int tries = 0; tries < 20 && guard < 0; tries++) {
        if (tries > 0) { /* that port was taken in the other family: a new engine, a new port */
            recorder_free(&srv);
            recorder_init(&srv, &so);
            srv.echo = 1;
        }
        rc = negio_engine_listen(srv.e, listen_on, sc, &port);
        if (rc == 0)
            guard = reserve_other_family(listen_on, port);
    }
    negio_config_del(sc);
    assert_int_equal(rc, 0);
    assert_true(guard >= 0);
    recorder_init(&cli, &co);
    rec_conn r = {0};
    negio_econn *c;
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "negio-dual", port, cc, &r, &c), 0);
    negio_config_del(cc);
    assert_int_equal(negio_engine_write(c, "by name", 7), 0);
    recorder_wait(&cli, &cli.messages, 1, 10000);
    if (r.closed)
        fprintf(stderr, "%s: %s\n", listen_on, r.detail);
    assert_string_equal(r.first, "by name");
    negio_econn_unref(c);
    recorder_free(&cli);
    recorder_free(&srv);
    close(guard);
}

static void a_name_with_two_addresses_reaches_a_server_on_either(void **state)
{
    (void)state;
    /* the wrapper is really in place: the name has both families */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    assert_int_equal(getaddrinfo("negio-dual", "1", &hints, &res), 0);
    int v4 = 0, v6 = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        v4 |= a->ai_family == AF_INET;
        v6 |= a->ai_family == AF_INET6;
    }
    fprintf(stderr, "negio-dual resolves first to %s\n",
            res->ai_family == AF_INET ? "IPv4" : "IPv6");
    freeaddrinfo(res);
    assert_true(v4 && v6);
    connects_by_name("127.0.0.1:0");
    connects_by_name("[::1]:0");
}

int main(void)
{
    const char *hosts = getenv("NSS_WRAPPER_HOSTS");
    if (hosts == NULL || getenv("LD_PRELOAD") == NULL) {
        fprintf(stderr, "run through ctest: needs nss_wrapper (LD_PRELOAD, NSS_WRAPPER_HOSTS)\n");
        return 1;
    }
    FILE *f = fopen(hosts, "w");
    if (f == NULL)
        return 1;
    fputs("127.0.0.1 negio-dual\n::1 negio-dual\n", f);
    fclose(f);
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_name_with_two_addresses_reaches_a_server_on_either),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
