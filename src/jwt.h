/*
 * jwt — JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515): signature check and
 * claims decoding, plus minting HS256 tokens for `sse-fcgi token`. The only user of
 * libcrypto (OpenSSL 3) and of jansson; their types never leave this file. No I/O except
 * jwt_key_load() reading its PEM file, no logging: callers decide what to say.
 *
 * The algorithm is the verifier's, never the token's: the header's "alg" only picks among
 * what is configured (HS256 needs a secret; RS256 an RSA key; ES256 a P-256 key), so
 * "none", an unconfigured algorithm, or an HS256 token against a public key are refused
 * (JWT_ALG) before any signature work. MACs are compared with CRYPTO_memcmp.
 *
 * Bounds, checked before any parse: a token is at most JWT_TOKEN_MAX bytes, exactly three
 * strict base64url parts (b64url.h), a header of at most 1 KiB decoded, JSON nested at most
 * JWT_DEPTH_MAX deep, no duplicate keys, objects at the top. A "crit" header is refused
 * (we understand no extension). Claims decoded: exp, nbf (integer or fractional
 * NumericDate), iss, aud (string or array of strings), sse.subscribe and sse.publish
 * (arrays of strings); a claim of the wrong type makes the token malformed; unknown claims
 * are ignored. Whether the claims are acceptable (times, issuer, grants) is access.c's.
 */
#ifndef JWT_H
#define JWT_H

#include <stddef.h>

#define JWT_TOKEN_MAX 8192     /* bytes of a token; browsers cap a cookie near 4 KB */
#define JWT_DEPTH_MAX 8        /* JSON nesting; claims need 3 */
#define JWT_LIST_MAX 256       /* entries of aud, sse.subscribe, sse.publish each */

enum jwt_alg {
	JWT_NONE = 0,
	JWT_HS256 = 1,
	JWT_RS256 = 2,
	JWT_ES256 = 4
};

enum jwt_status {
	JWT_OK = 0,
	JWT_MALFORMED,    /* not three base64url parts of JSON objects, bad claim types */
	JWT_TOO_LARGE,    /* over JWT_TOKEN_MAX, or nested deeper than JWT_DEPTH_MAX */
	JWT_ALG,          /* alg none, unknown, or not configured */
	JWT_SIGNATURE,    /* signature does not verify */
	JWT_NOMEM
};

/* One PEM public key (RSA of 2048+ bits for RS256, or EC P-256 for ES256). Opaque. */
struct jwt_key;

/*
 * Reads a PEM "PUBLIC KEY" from path. NULL on failure with one short sentence in err
 * (no file name: the caller names file, line and key), e.g. "cannot open: Permission
 * denied", "not a PEM public key", "RSA key of 1024 bits, RS256 needs 2048 or more".
 * Free with jwt_key_free() (NULL is fine).
 */
struct jwt_key *jwt_key_load(const char *path, char *err, size_t errlen);
void jwt_key_free(struct jwt_key *k);
/* JWT_RS256 or JWT_ES256. */
enum jwt_alg jwt_key_alg(const struct jwt_key *k);

/* What verifies tokens; every member borrowed, any may be NULL/0 (then not accepted). */
struct jwt_verifier {
	const char *secret;            /* HS256 */
	size_t secret_len;
	const char *previous_secret;   /* HS256 too, during a rotation */
	size_t previous_len;
	const struct jwt_key *key;     /* RS256 or ES256, by the key's type */
};

/* Decoded claims. Strings borrow from the decoded document, which the struct owns: valid
 * until jwt_claims_release(). Lists are NULL when absent (count 0). */
struct jwt_claims {
	int has_exp, has_nbf;
	long long exp, nbf;            /* seconds since the epoch, fractions dropped */
	const char *iss;               /* NULL when absent */
	const char **aud;              /* a string aud is a list of one */
	size_t naud;
	const char **subscribe;
	size_t nsubscribe;
	const char **publish;
	size_t npublish;
	void *doc;                     /* private */
	enum jwt_alg alg;              /* the algorithm that verified it */
	int previous;                  /* 1 when previous_secret verified it */
};

/*
 * Verifies token (len bytes, not necessarily NUL-terminated) and decodes its claims into
 * c. JWT_OK: c is filled, release it. Anything else: c is left empty (releasing is
 * harmless). The signature is checked before the payload is parsed.
 */
enum jwt_status jwt_verify(const struct jwt_verifier *v, const char *token, size_t len,
    struct jwt_claims *c);
void jwt_claims_release(struct jwt_claims *c);

/* A short, token-free description of a status ("bad signature"). */
const char *jwt_status_text(enum jwt_status st);

/* What jwt_mint_hs256() puts in a token. */
struct jwt_mint {
	const char *sub, *iss, *aud;   /* claims set when not NULL */
	long long iat, exp;
	const char *const *subscribe;  /* sse.subscribe, nsubscribe entries */
	size_t nsubscribe;
	const char *const *publish;    /* sse.publish; left out when npublish is 0 */
	size_t npublish;
};

/* A new NUL-terminated HS256 token (the caller frees it), NULL when out of memory. */
char *jwt_mint_hs256(const char *secret, size_t secret_len, const struct jwt_mint *m);

#endif
