/*
 * A tiny JSON writer for the negio command: one object per line, written straight to a FILE.
 *
 * Strings are arbitrary bytes. The output is valid JSON (RFC 8259) for any input: '"', '\\' and
 * control characters (below 0x20, and 0x7f) are escaped as \" \\ \n \r \t or \u00XX; so are the
 * C1 controls U+0080..U+009F and the separators U+2028 and U+2029, as \u0080..\u009f, \u2028 and
 * \u2029, which a reader decodes to the same characters; other well-formed UTF-8 passes through
 * unchanged; every byte that is not part of a well-formed UTF-8 sequence
 * (stray continuation bytes, overlong forms, surrogates, code points above U+10FFFF, truncated
 * sequences) is written as \u00XX of the byte's value. So a reader gets the exact text back for
 * UTF-8 input, and for other input the bytes mapped one to one onto U+0000..U+00FF.
 */
#ifndef NEGIO_CLI_JSON_H
#define NEGIO_CLI_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 8

typedef struct json_writer {
    FILE *out;
    unsigned depth;
    int first[JSON_MAX_DEPTH]; /* the next item at this depth is the first: no comma */
    int after_key;             /* a key was written: the value needs no comma */
} json_writer;

void json_init(json_writer *w, FILE *out);

void json_begin_object(json_writer *w);
void json_end_object(json_writer *w);
void json_begin_array(json_writer *w);
void json_end_array(json_writer *w);

/* An object member's name; the next call writes its value. */
void json_key(json_writer *w, const char *key);

void json_string(json_writer *w, const char *s); /* NULL writes null */
void json_bytes(json_writer *w, const void *data, size_t len);
void json_int(json_writer *w, long long v);
void json_bool(json_writer *w, int v);
void json_null(json_writer *w);

/* Shorthands for a member: key and value. */
void json_kv_string(json_writer *w, const char *key, const char *s);
void json_kv_int(json_writer *w, const char *key, long long v);
void json_kv_bool(json_writer *w, const char *key, int v);

/* Writes DATA as one quoted, escaped JSON string (also used for human-readable output, where it
 * keeps control characters away from the terminal). */
void json_quote(FILE *out, const void *data, size_t len);

#endif /* NEGIO_CLI_JSON_H */
