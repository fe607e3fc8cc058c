#include "wire/transcript.h"

#include <openssl/evp.h>

#include "wire/frame.h"
#include "negio/negio.h"

/* A negio__transcript is an EVP_MD_CTX under an opaque name (the struct is never defined):
 * nothing outside this file sees OpenSSL. */

static EVP_MD_CTX *start(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    return md;
}

int negio__transcript_add(negio__transcript **t, const uint8_t *hdr, const uint8_t *body,
                          size_t len)
{
    if (*t == NULL) {
        EVP_MD_CTX *md = start();
        if (md == NULL)
            return NEGIO_ERR_NOMEM;
        *t = (negio__transcript *)md;
    }
    EVP_MD_CTX *md = (EVP_MD_CTX *)*t;
    if (EVP_DigestUpdate(md, hdr, NEGIO__HDR_LEN) != 1 ||
        (len > 0 && EVP_DigestUpdate(md, body, len) != 1))
        return NEGIO_ERR_NOMEM;
    return 0;
}

int negio__transcript_final(negio__transcript **t, uint8_t out[NEGIO__TRANSCRIPT_LEN])
{
    EVP_MD_CTX *md = *t != NULL ? (EVP_MD_CTX *)*t : start();
    unsigned n = 0;
    int ok = md != NULL && EVP_DigestFinal_ex(md, out, &n) == 1 && n == NEGIO__TRANSCRIPT_LEN;
    EVP_MD_CTX_free(md);
    *t = NULL;
    return ok ? 0 : NEGIO_ERR_NOMEM;
}

void negio__transcript_free(negio__transcript **t)
{
    EVP_MD_CTX_free((EVP_MD_CTX *)*t);
    *t = NULL;
}
