/* jwt — JWS compact tokens with libcrypto and jansson; see jwt.h. */
#include "jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"

#define HEADER_MAX 1024        /* decoded header bytes: {"alg":"ES256","typ":"JWT","kid":..} */
#define SIG_MAX 1024           /* decoded signature: RSA-8192 at most */
#define HS256_LEN 32
#define ES256_LEN 64

struct jwt_key {
	EVP_PKEY *pkey;
	enum jwt_alg alg;
};

static void
say(char *err, size_t errlen, const char *what)
{
	if (errlen > 0)
		snprintf(err, errlen, "%s", what);
}

struct jwt_key *
jwt_key_load(const char *path, char *err, size_t errlen)
{
	struct jwt_key *k = NULL;
	EVP_PKEY *pkey = NULL;
	FILE *fp = NULL;
	char group[64], msg[128];
	size_t glen = 0;
	int bits;

	fp = fopen(path, "re");
	if (fp == NULL) {
		snprintf(msg, sizeof(msg), "cannot open: %s", strerror(errno));
		say(err, errlen, msg);
		goto fail;
	}
	pkey = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	if (pkey == NULL) {
		say(err, errlen, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
		goto fail;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < 2048) {
			snprintf(msg, sizeof(msg), "RSA key of %d bits, RS256 needs 2048 or more",
			    bits);
			say(err, errlen, msg);
			goto fail;
		}
		k->alg = JWT_RS256;
		break;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		    sizeof(group), &glen) != 1 || strcmp(group, "prime256v1") != 0) {
			say(err, errlen, "EC key not on P-256 (prime256v1), which ES256 needs");
			goto fail;
		}
		k->alg = JWT_ES256;
		break;
	default:
		say(err, errlen, "neither an RSA nor an EC P-256 public key");
		goto fail;
	}
	k->pkey = pkey;
	fclose(fp);
	return k;

fail:
	ERR_clear_error();
	free(k);
	EVP_PKEY_free(pkey);
	if (fp != NULL)
		fclose(fp);
	return NULL;
}

void
jwt_key_free(struct jwt_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum jwt_alg
jwt_key_alg(const struct jwt_key *k)
{
	return k != NULL ? k->alg : JWT_NONE;
}

const char *
jwt_status_text(enum jwt_status st)
{
	switch (st) {
	case JWT_OK: return "ok";
	case JWT_MALFORMED: return "malformed token";
	case JWT_TOO_LARGE: return "token too large";
	case JWT_ALG: return "algorithm not accepted";
	case JWT_SIGNATURE: return "bad signature";
	case JWT_NOMEM: return "out of memory";
	}
	return "invalid token";
}

/* ---- signatures ---- */

static int
hs256_ok(const char *secret, size_t slen, const char *data, size_t dlen,
    const unsigned char *sig, size_t siglen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;

	if (secret == NULL || siglen != HS256_LEN)
		return 0;
	if (HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)data, dlen, mac,
	    &mlen) == NULL || mlen != HS256_LEN)
		return 0;
	return CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
}

/* JWS carries ES256 as r || s, 32 bytes each; libcrypto verifies DER. */
static int
es256_to_der(const unsigned char *sig, unsigned char *der, size_t derlen, size_t *outlen)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
	unsigned char *p = der;
	int n, rc = -1;

	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
		goto done;
	r = s = NULL;   /* es owns them now */
	n = i2d_ECDSA_SIG(es, NULL);
	if (n <= 0 || (size_t)n > derlen || i2d_ECDSA_SIG(es, &p) != n)
		goto done;
	*outlen = (size_t)n;
	rc = 0;
done:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rc;
}

static int
pkey_ok(const struct jwt_key *k, const char *data, size_t dlen, const unsigned char *sig,
    size_t siglen)
{
	unsigned char der[80];
	EVP_MD_CTX *ctx = NULL;
	int ok = 0;

	if (k->alg == JWT_ES256) {
		if (siglen != ES256_LEN || es256_to_der(sig, der, sizeof(der), &siglen) == -1)
			goto done;
		sig = der;
	} else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
		goto done;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1)
		goto done;
	ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)data, dlen) == 1;
done:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* ---- JSON ---- */

/* Deepest nesting of the JSON text (strings skipped), stopping early past max. */
static int
depth_over(const unsigned char *s, size_t len, int max)
{
	int depth = 0, in_str = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_str = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '{' || s[i] == '[') {
			if (++depth > max)
				return 1;
		} else if (s[i] == '}' || s[i] == ']') {
			depth--;
		}
	}
	return 0;
}

static enum jwt_status
decode_json(const char *b64, size_t b64len, unsigned char *buf, size_t buflen, json_t **out)
{
	json_error_t jerr;
	long n;

	*out = NULL;
	n = b64url_decode(buf, buflen, b64, b64len);
	if (n <= 0)
		return JWT_MALFORMED;
	if (depth_over(buf, (size_t)n, JWT_DEPTH_MAX))
		return JWT_TOO_LARGE;
	*out = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (*out == NULL)
		return JWT_MALFORMED;
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return JWT_MALFORMED;
	}
	return JWT_OK;
}

/* A NumericDate: integer or real, finite (JSON has no NaN), seconds. */
static int
numeric_date(json_t *v, long long *out)
{
	double d;

	if (json_is_integer(v)) {
		*out = (long long)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d < -9.2e18 || d > 9.2e18)
			return -1;
		*out = (long long)d;
		return 0;
	}
	return -1;
}

/* A string or (string_ok 0) only an array of strings into a new list; -1 malformed,
 * -2 out of memory. */
static int
string_list(json_t *v, int string_ok, const char ***list, size_t *n)
{
	size_t i, cnt;
	json_t *e;

	if (string_ok && json_is_string(v)) {
		if ((*list = malloc(sizeof(**list))) == NULL)
			return -2;
		(*list)[0] = json_string_value(v);
		*n = 1;
		return 0;
	}
	if (!json_is_array(v))
		return -1;
	cnt = json_array_size(v);
	if (cnt > JWT_LIST_MAX)
		return -1;
	if (cnt == 0)
		return 0;
	if ((*list = malloc(cnt * sizeof(**list))) == NULL)
		return -2;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			return -1;    /* the caller releases the list */
		(*list)[i] = json_string_value(e);
	}
	*n = cnt;
	return 0;
}

static enum jwt_status
claims_fill(struct jwt_claims *c, json_t *doc)
{
	json_t *v, *sse;
	int rc = 0;

	if ((v = json_object_get(doc, "exp")) != NULL) {
		if (numeric_date(v, &c->exp) == -1)
			return JWT_MALFORMED;
		c->has_exp = 1;
	}
	if ((v = json_object_get(doc, "nbf")) != NULL) {
		if (numeric_date(v, &c->nbf) == -1)
			return JWT_MALFORMED;
		c->has_nbf = 1;
	}
	if ((v = json_object_get(doc, "iss")) != NULL) {
		if (!json_is_string(v))
			return JWT_MALFORMED;
		c->iss = json_string_value(v);
	}
	if ((v = json_object_get(doc, "aud")) != NULL &&
	    (rc = string_list(v, 1, &c->aud, &c->naud)) != 0)
		return rc == -2 ? JWT_NOMEM : JWT_MALFORMED;
	if ((sse = json_object_get(doc, "sse")) == NULL)
		return JWT_OK;
	if (!json_is_object(sse))
		return JWT_MALFORMED;
	if ((v = json_object_get(sse, "subscribe")) != NULL &&
	    (rc = string_list(v, 0, &c->subscribe, &c->nsubscribe)) != 0)
		return rc == -2 ? JWT_NOMEM : JWT_MALFORMED;
	if ((v = json_object_get(sse, "publish")) != NULL &&
	    (rc = string_list(v, 0, &c->publish, &c->npublish)) != 0)
		return rc == -2 ? JWT_NOMEM : JWT_MALFORMED;
	return JWT_OK;
}

void
jwt_claims_release(struct jwt_claims *c)
{
	free(c->aud);
	free(c->subscribe);
	free(c->publish);
	if (c->doc != NULL)
		json_decref(c->doc);
	memset(c, 0, sizeof(*c));
}

/* ---- verify ---- */

static enum jwt_alg
alg_named(const char *s)
{
	if (strcmp(s, "HS256") == 0)
		return JWT_HS256;
	if (strcmp(s, "RS256") == 0)
		return JWT_RS256;
	if (strcmp(s, "ES256") == 0)
		return JWT_ES256;
	return JWT_NONE;
}

enum jwt_status
jwt_verify(const struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *c)
{
	unsigned char hbuf[B64URL_DECODED_MAX(HEADER_MAX * 4 / 3 + 4)];
	unsigned char pbuf[B64URL_DECODED_MAX(JWT_TOKEN_MAX)];
	unsigned char sig[SIG_MAX];
	const char *dot1, *dot2, *p, *alg_s;
	json_t *head = NULL, *doc = NULL, *alg_v;
	enum jwt_status st;
	enum jwt_alg alg;
	size_t hlen, plen, slen, signed_len;
	long siglen;

	memset(c, 0, sizeof(*c));
	if (len > JWT_TOKEN_MAX)
		return JWT_TOO_LARGE;
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		return JWT_MALFORMED;
	p = dot1 + 1;
	dot2 = memchr(p, '.', len - (size_t)(p - token));
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return JWT_MALFORMED;
	hlen = (size_t)(dot1 - token);
	plen = (size_t)(dot2 - p);
	signed_len = (size_t)(dot2 - token);
	slen = len - signed_len - 1;
	if (hlen > HEADER_MAX * 4 / 3 + 4)
		return JWT_MALFORMED;

	st = decode_json(token, hlen, hbuf, sizeof(hbuf), &head);
	if (st != JWT_OK)
		goto fail;
	alg_v = json_object_get(head, "alg");
	if (alg_v == NULL || !json_is_string(alg_v) || json_object_get(head, "crit") != NULL) {
		st = json_object_get(head, "crit") != NULL ? JWT_ALG : JWT_MALFORMED;
		goto fail;
	}
	alg_s = json_string_value(alg_v);
	alg = alg_named(alg_s);
	/* the token only names which of the configured algorithms to use */
	if (alg == JWT_NONE || (alg == JWT_HS256 && v->secret == NULL && v->previous_secret == NULL) ||
	    (alg != JWT_HS256 && jwt_key_alg(v->key) != alg)) {
		st = JWT_ALG;
		goto fail;
	}
	siglen = b64url_decode(sig, sizeof(sig), dot2 + 1, slen);
	if (siglen <= 0) {
		st = JWT_MALFORMED;
		goto fail;
	}
	if (alg == JWT_HS256) {
		if (hs256_ok(v->secret, v->secret_len, token, signed_len, sig, (size_t)siglen))
			c->previous = 0;
		else if (hs256_ok(v->previous_secret, v->previous_len, token, signed_len, sig,
		    (size_t)siglen))
			c->previous = 1;
		else {
			st = JWT_SIGNATURE;
			goto fail;
		}
	} else if (!pkey_ok(v->key, token, signed_len, sig, (size_t)siglen)) {
		st = JWT_SIGNATURE;
		goto fail;
	}
	json_decref(head);
	head = NULL;

	st = decode_json(p, plen, pbuf, sizeof(pbuf), &doc);
	if (st != JWT_OK)
		goto fail;
	c->doc = doc;
	c->alg = alg;
	st = claims_fill(c, doc);
	if (st != JWT_OK)
		goto fail;
	return JWT_OK;

fail:
	if (head != NULL)
		json_decref(head);
	if (c->doc == NULL && doc != NULL)
		json_decref(doc);
	jwt_claims_release(c);
	return st;
}

/* ---- mint ---- */

static json_t *
string_array(const char *const *s, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < n; i++) {
		if (json_array_append_new(a, json_string(s[i])) == -1) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* base64url(text) appended at out; returns the characters written. */
static size_t
append_b64(char *out, size_t room, const char *text, size_t len)
{
	long n = b64url_encode(out, room, (const unsigned char *)text, len);

	return n < 0 ? 0 : (size_t)n;
}

char *
jwt_mint_hs256(const char *secret, size_t secret_len, const struct jwt_mint *m)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	json_t *doc = json_object(), *sse = json_object();
	char *payload = NULL, *tok = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	size_t plen, cap, o;
	int bad = doc == NULL || sse == NULL;

	if (!bad && m->sub != NULL)
		bad |= json_object_set_new(doc, "sub", json_string(m->sub));
	if (!bad && m->iss != NULL)
		bad |= json_object_set_new(doc, "iss", json_string(m->iss));
	if (!bad && m->aud != NULL)
		bad |= json_object_set_new(doc, "aud", json_string(m->aud));
	if (!bad)
		bad |= json_object_set_new(doc, "iat", json_integer(m->iat));
	if (!bad)
		bad |= json_object_set_new(doc, "exp", json_integer(m->exp));
	if (!bad)
		bad |= json_object_set_new(sse, "subscribe",
		    string_array(m->subscribe, m->nsubscribe));
	if (!bad && m->npublish > 0)
		bad |= json_object_set_new(sse, "publish", string_array(m->publish, m->npublish));
	if (!bad) {
		bad |= json_object_set_new(doc, "sse", sse);
		sse = NULL;
	}
	if (bad || (payload = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto done;
	plen = strlen(payload);
	cap = B64URL_ENCODED_LEN(sizeof(header) - 1) + B64URL_ENCODED_LEN(plen) +
	    B64URL_ENCODED_LEN(HS256_LEN) + 3;
	if ((tok = malloc(cap)) == NULL)
		goto done;
	o = append_b64(tok, cap, header, sizeof(header) - 1);
	tok[o++] = '.';
	o += append_b64(tok + o, cap - o, payload, plen);
	if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)tok, o, mac,
	    &mlen) == NULL || mlen != HS256_LEN) {
		free(tok);
		tok = NULL;
		goto done;
	}
	tok[o++] = '.';
	append_b64(tok + o, cap - o, (const char *)mac, HS256_LEN);
done:
	free(payload);
	json_decref(sse);
	json_decref(doc);
	return tok;
}
