#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void json_init(json_writer *w, FILE *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->first[0] = 1;
}

/* Separates this item from the previous one at the same depth. */
static void json_item(json_writer *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth])
        fputc(',', w->out);
    w->first[w->depth] = 0;
}

static void json_open(json_writer *w, int c)
{
    json_item(w);
    if (w->depth + 1 >= JSON_MAX_DEPTH)
        abort(); /* a programming error: the command's objects are shallow */
    fputc(c, w->out);
    w->first[++w->depth] = 1;
}

static void json_close(json_writer *w, int c)
{
    if (w->depth == 0)
        abort();
    w->depth--;
    fputc(c, w->out);
}

void json_begin_object(json_writer *w)
{
    json_open(w, '{');
}

void json_end_object(json_writer *w)
{
    json_close(w, '}');
}

void json_begin_array(json_writer *w)
{
    json_open(w, '[');
}

void json_end_array(json_writer *w)
{
    json_close(w, ']');
}

void json_key(json_writer *w, const char *key)
{
    json_item(w);
    json_quote(w->out, key, strlen(key));
    fputc(':', w->out);
    w->after_key = 1;
}

/* Length of the well-formed UTF-8 sequence at P (RFC 3629, section 4), or 0 if there is none. */
static size_t utf8_sequence(const uint8_t *p, size_t n)
{
    uint8_t b = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        if (b == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (b == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        if (b == 0xf0)
            lo = 0x90; /* no overlong forms */
        else if (b == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* The code point of the well-formed sequence of N bytes at P that a terminal or a line reader
 * would act on, or 0: the C1 controls U+0080..U+009F (0x9b is CSI to a terminal that reads 8-bit
 * controls, U+0085 is NEL) and Unicode's line and paragraph separators U+2028 and U+2029. */
static unsigned utf8_control(const uint8_t *p, size_t n)
{
    if (n == 2 && p[0] == 0xc2 && p[1] <= 0x9f)
        return p[1];
    if (n == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
        return 0x2000u + (p[2] - 0x80u);
    return 0;
}

void json_quote(FILE *out, const void *data, size_t len)
{
    const uint8_t *p = data;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        uint8_t b = p[i];
        size_t n = utf8_sequence(p + i, len - i);
        unsigned control = n > 1 ? utf8_control(p + i, n) : 0;
        if (b == '"' || b == '\\') {
            fputc('\\', out);
            fputc(b, out);
        } else if (b == '\n')
            fputs("\\n", out);
        else if (b == '\r')
            fputs("\\r", out);
        else if (b == '\t')
            fputs("\\t", out);
        else if (b < 0x20 || b == 0x7f || n == 0)
            fprintf(out, "\\u%04x", (unsigned)b);
        else if (control != 0) {
            fprintf(out, "\\u%04x", control);
            i += n;
            continue;
        } else {
            fwrite(p + i, 1, n, out);
            i += n;
            continue;
        }
        i++;
    }
    fputc('"', out);
}

void json_bytes(json_writer *w, const void *data, size_t len)
{
    json_item(w);
    json_quote(w->out, data, len);
}

void json_string(json_writer *w, const char *s)
{
    if (s == NULL)
        json_null(w);
    else
        json_bytes(w, s, strlen(s));
}

void json_int(json_writer *w, long long v)
{
    json_item(w);
    fprintf(w->out, "%lld", v);
}

void json_bool(json_writer *w, int v)
{
    json_item(w);
    fputs(v ? "true" : "false", w->out);
}

void json_null(json_writer *w)
{
    json_item(w);
    fputs("null", w->out);
}

void json_kv_string(json_writer *w, const char *key, const char *s)
{
    json_key(w, key);
    json_string(w, s);
}

void json_kv_int(json_writer *w, const char *key, long long v)
{
    json_key(w, key);
    json_int(w, v);
}

void json_kv_bool(json_writer *w, const char *key, int v)
{
    json_key(w, key);
    json_bool(w, v);
}
