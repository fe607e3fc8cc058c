/* A program that leaks on purpose, to prove that the leak checkers as the tests configure them
 * (LeakSanitizer with tests/lsan.supp in the ASan build, valgrind with tests/valgrind.supp in
 * scripts/valgrind.sh) report a leak of negio's own: their suppressions cover leaks in the system
 * libraries only. It leaks only when NEGIO_LEAKY=1, so that running it by accident proves
 * nothing.
 *   leaky memory  loses a configuration made by negio_config_new();
 *   leaky fd      leaves a file descriptor open;
 *   leaky ntlm    runs a whole raw NTLM exchange in this process (initiator and acceptor, with an
 *                 account file of its own) and loses every buffer gss-ntlmssp hands back to its
 *                 caller: the NEGOTIATE, CHALLENGE and AUTHENTICATE tokens, a MIC, a wrap token
 *                 and an unwrapped plaintext. These are the buffers negio must release after
 *                 each GSS call; they are allocated inside gss-ntlmssp, so this is what a
 *                 suppression of gss-ntlmssp's own leaks must not cover. For each it prints
 *                 "leaked NAME SIZE" on stdout, for the check to find in the report. */
#include <fcntl.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "negio/negio.h"

static negio_config *sink;

/* 1.3.6.1.4.1.311.2.2.10, gss-ntlmssp's mechanism */
static gss_OID_desc ntlm_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

static void must(const char *what, OM_uint32 maj, OM_uint32 min)
{
    if (GSS_ERROR(maj)) {
        fprintf(stderr, "leaky: %s failed: major 0x%x, minor %u\n", what, maj, min);
        exit(2);
    }
}

/* Forgets B without releasing it: the only pointer to its memory is gone. */
static void lose(const char *name, gss_buffer_desc *b)
{
    printf("leaked %s %zu\n", name, b->length);
    b->value = NULL;
    b->length = 0;
}

static gss_name_t import(const char *text, gss_OID type)
{
    OM_uint32 maj, min = 0;
    gss_buffer_desc b = {strlen(text), (void *)text};
    gss_name_t n = GSS_C_NO_NAME;
    maj = gss_import_name(&min, &b, type, &n);
    must("gss_import_name", maj, min);
    return n;
}

static int leak_ntlm(void)
{
    /* the mechanism and an account, as scripts/realm.sh sets them up, in a folder of its own */
    char dir[] = "/tmp/negio-leaky-XXXXXX", mech[64], users[64];
    if (mkdtemp(dir) == NULL)
        return 2;
    snprintf(mech, sizeof(mech), "%s/mech.conf", dir);
    snprintf(users, sizeof(users), "%s/ntlm_users", dir);
    FILE *f = fopen(mech, "w");
    if (f == NULL)
        return 2;
    fputs("gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 "
          "/usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so\n",
          f);
    fclose(f);
    if ((f = fopen(users, "w")) == NULL)
        return 2;
    fputs("NEGIO:alice:leaky-password\n", f);
    fclose(f);
    setenv("GSS_MECH_CONFIG", mech, 1);
    setenv("NTLM_USER_FILE", users, 1);
    setenv("NETBIOS_COMPUTER_NAME", "NEGIO-HOST", 1);
    setenv("NETBIOS_DOMAIN_NAME", "NEGIO", 1);

    OM_uint32 maj, min = 0;
    gss_OID_set_desc mechs = {1, &ntlm_oid};
    gss_name_t user = import("NEGIO\\alice", GSS_C_NT_USER_NAME);
    gss_name_t service = import("negio@localhost", GSS_C_NT_HOSTBASED_SERVICE);
    gss_buffer_desc pw = {strlen("leaky-password"), (void *)"leaky-password"};
    gss_cred_id_t icred = GSS_C_NO_CREDENTIAL, acred = GSS_C_NO_CREDENTIAL;
    maj = gss_acquire_cred_with_password(&min, user, &pw, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                         &icred, NULL, NULL);
    must("gss_acquire_cred_with_password", maj, min);
    maj =
        gss_acquire_cred(&min, service, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &acred, NULL, NULL);
    must("gss_acquire_cred", maj, min);

    OM_uint32 flags = GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG;
    gss_ctx_id_t ic = GSS_C_NO_CONTEXT, ac = GSS_C_NO_CONTEXT;
    gss_buffer_desc negotiate = GSS_C_EMPTY_BUFFER, challenge = GSS_C_EMPTY_BUFFER;
    gss_buffer_desc authenticate = GSS_C_EMPTY_BUFFER, none = GSS_C_EMPTY_BUFFER;
    maj = gss_init_sec_context(&min, icred, &ic, service, &ntlm_oid, flags, 0, NULL, NULL, NULL,
                               &negotiate, NULL, NULL);
    must("gss_init_sec_context (NEGOTIATE)", maj, min);
    maj = gss_accept_sec_context(&min, &ac, acred, &negotiate, NULL, NULL, NULL, &challenge, NULL,
                                 NULL, NULL);
    must("gss_accept_sec_context (CHALLENGE)", maj, min);
    maj = gss_init_sec_context(&min, icred, &ic, service, &ntlm_oid, flags, 0, NULL, &challenge,
                               NULL, &authenticate, NULL, NULL);
    must("gss_init_sec_context (AUTHENTICATE)", maj, min);
    maj = gss_accept_sec_context(&min, &ac, acred, &authenticate, NULL, NULL, NULL, &none, NULL,
                                 NULL, NULL);
    must("gss_accept_sec_context (complete)", maj, min);

    /* per-message buffers; the acceptor checks each in the order they were made */
    gss_buffer_desc msg = {6, (void *)"leaky!"}, wrap = GSS_C_EMPTY_BUFFER;
    gss_buffer_desc plain = GSS_C_EMPTY_BUFFER, mic = GSS_C_EMPTY_BUFFER;
    maj = gss_wrap(&min, ic, 1, GSS_C_QOP_DEFAULT, &msg, NULL, &wrap);
    must("gss_wrap", maj, min);
    maj = gss_unwrap(&min, ac, &wrap, &plain, NULL, NULL);
    must("gss_unwrap", maj, min);
    maj = gss_get_mic(&min, ic, GSS_C_QOP_DEFAULT, &msg, &mic);
    must("gss_get_mic", maj, min);

    lose("negotiate", &negotiate);
    lose("challenge", &challenge);
    lose("authenticate", &authenticate);
    lose("wrap", &wrap);
    lose("unwrapped", &plain);
    lose("mic", &mic);
    /* everything else is released, so that only the six buffers are negio-style leaks */
    gss_release_buffer(&min, &none);
    gss_delete_sec_context(&min, &ic, GSS_C_NO_BUFFER);
    gss_delete_sec_context(&min, &ac, GSS_C_NO_BUFFER);
    gss_release_cred(&min, &icred);
    gss_release_cred(&min, &acred);
    gss_release_name(&min, &user);
    gss_release_name(&min, &service);
    unlink(mech);
    unlink(users);
    rmdir(dir);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (getenv("NEGIO_LEAKY") == NULL || strcmp(getenv("NEGIO_LEAKY"), "1") != 0) {
        fprintf(stderr, "leaky: set NEGIO_LEAKY=1 to leak on purpose\n");
        return 2;
    }
    if (strcmp(mode, "memory") == 0) {
        if (negio_config_new(&sink, NEGIO_ROLE_CLIENT) != NEGIO_OK ||
            negio_config_set_service(sink, "negio@localhost") != NEGIO_OK)
            return 2;
        sink = NULL; /* the only pointer to it is gone: definitely lost */
        return 0;
    }
    if (strcmp(mode, "fd") == 0)
        return open("/dev/null", O_RDONLY | O_CLOEXEC) < 0 ? 2 : 0;
    if (strcmp(mode, "ntlm") == 0)
        return leak_ntlm();
    fprintf(stderr, "usage: NEGIO_LEAKY=1 leaky memory|fd|ntlm\n");
    return 2;
}
