/* The mechanism OIDs and what they name. */
#include <string.h>

#include "gss/gss_internal.h"

gss_OID_desc negio__oid_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
gss_OID_desc negio__oid_krb5 = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
gss_OID_desc negio__oid_krb5_old = {5, (void *)"\x2b\x05\x01\x05\x02"};
gss_OID_desc negio__oid_krb5_ms = {9, (void *)"\x2a\x86\x48\x82\xf7\x12\x01\x02\x02"};
gss_OID_desc negio__oid_ntlm = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

static int oid_eq(const gss_OID a, const gss_OID b)
{
    return a != GSS_C_NO_OID && a->length == b->length &&
           memcmp(a->elements, b->elements, a->length) == 0;
}

negio_mech negio__gss_mech_of(gss_OID oid)
{
    if (oid_eq(oid, &negio__oid_krb5) || oid_eq(oid, &negio__oid_krb5_old) ||
        oid_eq(oid, &negio__oid_krb5_ms))
        return NEGIO_MECH_KERBEROS;
    if (oid_eq(oid, &negio__oid_ntlm))
        return NEGIO_MECH_NTLM;
    return NEGIO_MECH_NONE;
}

/* The mechanism a client asks GSS for; every call on one context must name the same one. */
gss_OID negio__gss_client_oid(const negio__gss *g)
{
    return g->want == NEGIO_MECH_KERBEROS ? &negio__oid_krb5
           : g->want == NEGIO_MECH_NTLM   ? &negio__oid_ntlm
                                          : &negio__oid_spnego;
}
