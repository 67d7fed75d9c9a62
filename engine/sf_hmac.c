/*
 * SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for signed ad click
 * links: the engine has no crypto library beneath it.
 */

#include <string.h>

#include "storefront.h"


typedef struct {
    uint32_t  h[8];
    uint64_t  bits;
    uint8_t   block[64];
    size_t    used;
} sf_sha256;


static const uint32_t  sf_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};


#define SF_ROR(x, n)  (((x) >> (n)) | ((x) << (32 - (n))))


static void
sf_sha256_block(sf_sha256 *s, const uint8_t *p)
{
    int       i;
    uint32_t  w[64], a, b, c, d, e, f, g, h, t1, t2;

    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16
               | (uint32_t) p[4 * i + 2] << 8 | p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        w[i] = (SF_ROR(w[i - 2], 17) ^ SF_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10))
               + w[i - 7]
               + (SF_ROR(w[i - 15], 7) ^ SF_ROR(w[i - 15], 18)
                  ^ (w[i - 15] >> 3))
               + w[i - 16];
    }

    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
    e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];

    for (i = 0; i < 64; i++) {
        t1 = h + (SF_ROR(e, 6) ^ SF_ROR(e, 11) ^ SF_ROR(e, 25))
             + ((e & f) ^ (~e & g)) + sf_sha256_k[i] + w[i];
        t2 = (SF_ROR(a, 2) ^ SF_ROR(a, 13) ^ SF_ROR(a, 22))
             + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }

    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}


static void
sf_sha256_init(sf_sha256 *s)
{
    static const uint32_t  iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f,
        0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };

    memcpy(s->h, iv, sizeof(iv));
    s->bits = 0;
    s->used = 0;
}


static void
sf_sha256_update(sf_sha256 *s, const void *data, size_t len)
{
    const uint8_t  *p = data;
    size_t          n;

    s->bits += (uint64_t) len * 8;

    while (len) {
        n = 64 - s->used;
        if (n > len) {
            n = len;
        }
        memcpy(s->block + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;

        if (s->used == 64) {
            sf_sha256_block(s, s->block);
            s->used = 0;
        }
    }
}


static void
sf_sha256_final(sf_sha256 *s, unsigned char out[32])
{
    int       i;
    uint64_t  bits;
    uint8_t   pad = 0x80, zero = 0, len[8];

    bits = s->bits;
    sf_sha256_update(s, &pad, 1);
    while (s->used != 56) {
        sf_sha256_update(s, &zero, 1);
    }
    for (i = 0; i < 8; i++) {
        len[i] = (uint8_t) (bits >> (56 - 8 * i));
    }
    sf_sha256_update(s, len, 8);

    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char) (s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char) (s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char) (s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char) s->h[i];
    }
}


void
sf_hmac_sha256(const void *key, size_t key_len, const void *msg,
    size_t msg_len, unsigned char out[32])
{
    size_t         i;
    uint8_t        k[64], pad[64];
    unsigned char  inner[32];
    sf_sha256      s;

    memset(k, 0, sizeof(k));
    if (key_len > 64) {
        sf_sha256_init(&s);
        sf_sha256_update(&s, key, key_len);
        sf_sha256_final(&s, k);
    } else {
        memcpy(k, key, key_len);
    }

    for (i = 0; i < 64; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    sf_sha256_init(&s);
    sf_sha256_update(&s, pad, 64);
    sf_sha256_update(&s, msg, msg_len);
    sf_sha256_final(&s, inner);

    for (i = 0; i < 64; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    sf_sha256_init(&s);
    sf_sha256_update(&s, pad, 64);
    sf_sha256_update(&s, inner, 32);
    sf_sha256_final(&s, out);
}


void
sf_ad_click_signature(const void *key, size_t key_len, const char *campaign,
    size_t campaign_len, const char *creative, size_t creative_len,
    char out[23])
{
    static const char  b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-_";
    size_t             i, o;
    uint32_t           v;
    sf_buf             msg;
    unsigned char      mac[32];

    /* campaign NUL creative: unambiguous, ids hold no NUL */
    sf_buf_init(&msg);
    sf_buf_append(&msg, campaign, campaign_len);
    sf_buf_append(&msg, "", 1);
    sf_buf_append(&msg, creative, creative_len);
    sf_hmac_sha256(key, key_len, msg.data ? msg.data : "", msg.len, mac);
    sf_buf_free(&msg);

    /* the first 16 bytes (128 bits), base64url without padding */
    o = 0;
    for (i = 0; i < 15; i += 3) {
        v = (uint32_t) mac[i] << 16 | (uint32_t) mac[i + 1] << 8 | mac[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    v = (uint32_t) mac[15] << 16;
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    out[o] = '\0';
}
