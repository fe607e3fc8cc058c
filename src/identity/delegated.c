/* Delegated credentials (include/negio/identity.h): a reference-counted owner of a credential
 * the GSS provider handed out (a client's forwarded Kerberos ticket, received by a server), and
 * the principal it belongs to. The credential lives in a memory cache the handle owns:
 * releasing the last reference destroys it. */
#include <stdatomic.h>

#include "base/alloc.h"
#include "gss/gss.h"
#include "identity/identity.h"
#include "negio/identity.h"

struct negio_delegated {
    atomic_int refs;
    void *cred; /* the provider's credential (src/gss) */
    char *principal;
};

negio_delegated *negio__delegated_new(void **cred, const char *principal)
{
    negio_delegated *d = negio__calloc(1, sizeof(*d));
    char *who = negio__strdup(principal);
    if (d == NULL || who == NULL) {
        negio__free(d);
        negio__free(who);
        negio__gss_cred_release(cred);
        return NULL;
    }
    atomic_init(&d->refs, 1);
    d->cred = *cred;
    *cred = NULL;
    d->principal = who;
    return d;
}

void *negio__delegated_cred(const negio_delegated *d)
{
    return d->cred;
}

void negio__delegated_ref(negio_delegated *d)
{
    if (d != NULL)
        atomic_fetch_add(&d->refs, 1);
}

void negio__delegated_unref(negio_delegated *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    negio__gss_cred_release(&d->cred);
    negio__free(d->principal);
    negio__free(d);
}

void negio_delegated_ref(negio_delegated *d)
{
    negio__delegated_ref(d);
}

void negio_delegated_unref(negio_delegated *d)
{
    negio__delegated_unref(d);
}

const char *negio_delegated_principal(const negio_delegated *d)
{
    return d->principal;
}
