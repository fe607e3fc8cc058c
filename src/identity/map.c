/* Which local account an authenticated peer is (negio.h, negio_config_add_user_map): an explicit
 * entry, else Kerberos auth_to_local rules (gss_localname, through the provider), else the NTLM
 * domain rule. NULL when none is acceptable. */
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "gss/gss.h"
#include "identity/identity.h"

int negio__identity_local_name(const negio_config *cfg, const negio__gss *g, char **out)
{
    negio_auth_info info = {.size = sizeof(info)};
    negio__gss_info(g, &info);
    const char *peer = info.peer;
    char *name = NULL;
    *out = NULL;
    if (peer == NULL || negio__gss_peer_unsafe(g)) /* "alice\0evil" must not become alice */
        return 0;
    for (size_t i = 0; i < cfg->user_map_len; i++) {
        const char *p = cfg->user_map[2 * i];
        if (info.mech == NEGIO_MECH_NTLM ? strcasecmp(p, peer) == 0 : strcmp(p, peer) == 0) {
            name = negio__strdup(cfg->user_map[2 * i + 1]);
            if (name == NULL)
                return NEGIO_ERR_NOMEM;
            break;
        }
    }
    if (name == NULL && info.mech == NEGIO_MECH_KERBEROS) {
        if (negio__gss_localname(g, &name) < 0)
            return NEGIO_ERR_NOMEM;
    } else if (name == NULL && info.mech == NEGIO_MECH_NTLM && cfg->ntlm_domain != NULL) {
        const char *sep = strchr(peer, '\\');
        size_t dlen = sep ? (size_t)(sep - peer) : 0;
        if (sep != NULL && dlen == strlen(cfg->ntlm_domain) &&
            strncasecmp(peer, cfg->ntlm_domain, dlen) == 0) {
            name = negio__strdup(sep + 1);
            if (name == NULL)
                return NEGIO_ERR_NOMEM;
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
        }
    }
    if (name != NULL && !negio__local_name_ok(name, strlen(name))) {
        negio__free(name);
        name = NULL;
    }
    *out = name;
    return 0;
}
