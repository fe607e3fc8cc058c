/*
 * negio tunnel: the values of its text log lines (key=value), apart from tunnel_run.c so that
 * tests/unit/test_tunnel_log_text.c can hold them to what they promise: whatever bytes a peer
 * puts in a name or a close message, a value stays on its line, starts no terminal escape and
 * cannot pass for another key.
 */
#include <string.h>

#include "json.h"
#include "tunnel.h"

/* Whether V is printable as it is in key=value text: printable ASCII without space, quote, '='
 * or backslash. A byte from 0x80 up is not plain either: bare, it could be the C1 control CSI
 * (0x9b) to a terminal that reads 8-bit controls, or half of a character the terminal joins with
 * what follows; quoted, json_quote escapes what is not well-formed UTF-8 and the C1 controls. */
static int text_plain(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '=' || *p == '\\')
            return 0;
    return 1;
}

void log_text_value(FILE *out, const char *key, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return;
    fprintf(out, " %s=", key);
    if (text_plain(v))
        fputs(v, out);
    else
        json_quote(out, v, strlen(v));
}
