/* The connector's internals shared inside src/conn (configuration copies, the clone for the
 * fuzzing fixture). */
#ifndef NEGIO_CONN_CONN_H
#define NEGIO_CONN_CONN_H

#include "base/config.h"

/* The configuration's shared GSS credential cache, made on first use (NULL without memory). */
struct negio__cred_cache *negio__config_creds(const negio_config *cfg);

/* Deep copy of a configuration (strings duplicated). 0 or NEGIO_ERR_NOMEM. */
int negio__config_copy(negio_config *dst, const negio_config *src);
void negio__config_clear(negio_config *cfg);

/* A copy of an established, idle connector (nothing buffered, no error, no TLS, not the
 * gss-sample profile): same state, a copy of its GSS context (negio__gss_clone in src/gss/gss.h:
 * SRC's own context is exported by the first clone and SRC then only serves as a template).
 * NEGIO_ERR_INVALID otherwise; the cause goes to DETAIL (NEGIO__DETAIL_MAX bytes). For the
 * fuzzing fixture of tests/fuzz/fuzz_established.c and its test. */
int negio__conn_clone(negio_conn **out, negio_conn *src, char *detail);

#endif
