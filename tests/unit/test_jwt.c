/* Unit tests for src/jwt.c: tokens minted elsewhere (PyJWT vectors), HS256 with a
 * previous secret, RS256 and ES256 with keys made here, every refusal class (alg none,
 * other or unconfigured algorithm, key confusion, crit, bad signature, malformed parts,
 * size and depth limits, duplicate keys, wrong claim types), key file checks, and the
 * cost of one verification printed (not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "b64url.h"
#include "jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define PREVIOUS "previous-secret-previous-secret-xyz"

/* Minted by PyJWT 2.6 (python3-jwt), not by this code. */
static const char py_hs256[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjbGluaWMiLCJhdWQiOlsid2ViIiwiYXBwIl0s"
    "ImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxMDAwLCJzc2UiOnsic3Vic2NyaWJlIjpbImRvY3Rvci0xMjMiLCJx"
    "dWV1ZS03LSoiXSwicHVibGlzaCI6WyJkb2N0b3ItKiJdfX0.1qAyWBDrKYZNHWgcqjxyYcQFKC-ASc20Gp9bN"
    "PmcdVs";
static const char py_previous[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsInNzZSI6eyJzdWJzY3JpYmUi"
    "OlsiKiJdfX0.s4D6qPN1DVyR84WjO9rmPiv0wjjNhHQLyW3iyWQ853c";

static const struct jwt_verifier hs = { SECRET, 32, NULL, 0, NULL };

static enum jwt_status
verify(const struct jwt_verifier *v, const char *tok)
{
	struct jwt_claims c;
	enum jwt_status st = jwt_verify(v, tok, strlen(tok), &c);

	jwt_claims_release(&c);
	return st;
}

/* header.payload from two JSON texts, signed HS256 with key (NULL: no signature part
 * content, "sig" = raw signature text). */
static char *
forge(const char *header, const char *payload, const char *key, const char *sig)
{
	char *t = malloc(20000);
	unsigned char mac[32];
	unsigned int mlen;
	long n;
	size_t o;

	assert_non_null(t);
	n = b64url_encode(t, 20000, (const unsigned char *)header, strlen(header));
	o = (size_t)n;
	t[o++] = '.';
	n = b64url_encode(t + o, 20000 - o, (const unsigned char *)payload, strlen(payload));
	o += (size_t)n;
	if (key != NULL) {
		HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)t, o, mac, &mlen);
		t[o++] = '.';
		b64url_encode(t + o, 20000 - o, mac, 32);
	} else {
		snprintf(t + o, 20000 - o, ".%s", sig);
	}
	return t;
}

static void
test_python_vectors(void **state)
{
	struct jwt_verifier rot = { SECRET, 32, PREVIOUS, strlen(PREVIOUS), NULL };
	struct jwt_claims c;

	(void)state;
	assert_int_equal(jwt_verify(&hs, py_hs256, strlen(py_hs256), &c), JWT_OK);
	assert_int_equal(c.alg, JWT_HS256);
	assert_int_equal(c.previous, 0);
	assert_true(c.has_exp);
	assert_int_equal(c.exp, 4102444800LL);
	assert_true(c.has_nbf);
	assert_int_equal(c.nbf, 1000);
	assert_string_equal(c.iss, "clinic");
	assert_int_equal(c.naud, 2);
	assert_string_equal(c.aud[0], "web");
	assert_string_equal(c.aud[1], "app");
	assert_int_equal(c.nsubscribe, 2);
	assert_string_equal(c.subscribe[0], "doctor-123");
	assert_string_equal(c.subscribe[1], "queue-7-*");
	assert_int_equal(c.npublish, 1);
	assert_string_equal(c.publish[0], "doctor-*");
	jwt_claims_release(&c);

	assert_int_equal(verify(&hs, py_previous), JWT_SIGNATURE);
	assert_int_equal(jwt_verify(&rot, py_previous, strlen(py_previous), &c), JWT_OK);
	assert_int_equal(c.previous, 1);
	jwt_claims_release(&c);
	assert_int_equal(jwt_verify(&rot, py_hs256, strlen(py_hs256), &c), JWT_OK);
	assert_int_equal(c.previous, 0);
	jwt_claims_release(&c);
}

static void
test_mint_round_trip(void **state)
{
	const char *sub[] = { "doctor-123", "queue-7-*" }, *pub[] = { "*" };
	struct jwt_mint m = { "alice", "clinic", "web", 100, 200, sub, 2, pub, 1 };
	struct jwt_claims c;
	char *t = jwt_mint_hs256(SECRET, 32, &m);

	(void)state;
	assert_non_null(t);
	assert_int_equal(jwt_verify(&hs, t, strlen(t), &c), JWT_OK);
	assert_int_equal(c.exp, 200);
	assert_string_equal(c.iss, "clinic");
	assert_int_equal(c.naud, 1);
	assert_string_equal(c.aud[0], "web");
	assert_int_equal(c.nsubscribe, 2);
	assert_string_equal(c.publish[0], "*");
	jwt_claims_release(&c);
	free(t);
}

static void
test_refusals(void **state)
{
	const struct jwt_verifier none = { NULL, 0, NULL, 0, NULL };
	static const char pl[] = "{\"exp\":4102444800,\"sse\":{\"subscribe\":[\"*\"]}}";
	struct {
		const char *header, *payload, *key, *sig;
		enum jwt_status want;
	} cases[] = {
		{ "{\"alg\":\"none\"}", pl, NULL, "", JWT_ALG },
		{ "{\"alg\":\"none\"}", pl, SECRET, NULL, JWT_ALG },
		{ "{\"alg\":\"HS384\"}", pl, SECRET, NULL, JWT_ALG },
		{ "{\"alg\":\"RS256\"}", pl, SECRET, NULL, JWT_ALG },
		{ "{\"alg\":\"hs256\"}", pl, SECRET, NULL, JWT_ALG },
		{ "{\"typ\":\"JWT\"}", pl, SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":256}", pl, SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", pl, SECRET, NULL, JWT_ALG },
		{ "{\"alg\":\"HS256\",\"alg\":\"none\"}", pl, SECRET, NULL, JWT_MALFORMED },
		{ "[\"HS256\"]", pl, SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", pl, "another-secret-another-secret-!!", NULL, JWT_SIGNATURE },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"exp\":4102444800}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "[1]", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "not json", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":\"4102444800\"}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"aud\":7}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"aud\":[\"a\",7]}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"iss\":[]}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"sse\":[]}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"sse\":{\"subscribe\":\"*\"}}", SECRET, NULL,
		  JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"sse\":{\"publish\":[null]}}", SECRET, NULL,
		  JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"x\":[[[[[[[[[1]]]]]]]]]}", SECRET, NULL,
		  JWT_TOO_LARGE },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"x\":\"[[[[[[[[[[[[\"}", SECRET, NULL, JWT_OK },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1,\"x\":\"a\\u0000b\"}", SECRET, NULL, JWT_MALFORMED },
		{ "{\"alg\":\"HS256\"}", "{\"exp\":1.5}", SECRET, NULL, JWT_OK },
	};
	size_t i;
	char *t;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = forge(cases[i].header, cases[i].payload, cases[i].key, cases[i].sig);
		if (verify(&hs, t) != cases[i].want)
			fail_msg("case %zu (%s %s): got %d, want %d", i, cases[i].header,
			    cases[i].payload, verify(&hs, t), cases[i].want);
		free(t);
	}
	/* nothing configured: even a good HS256 token is refused */
	assert_int_equal(verify(&none, py_hs256), JWT_ALG);
}

static void
test_malformed_text(void **state)
{
	char buf[16384], *t;
	size_t n = strlen(py_hs256);
	const char *bad[] = {
		"", ".", "..", "...", "a.b", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9",
		"eyJhbGciOiJIUzI1NiJ9.e30", "eyJhbGciOiJIUzI1NiJ9.e30.", ".e30.abc",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(verify(&hs, bad[i]), JWT_OK);
	/* truncated at every length */
	for (i = 0; i < n; i++) {
		struct jwt_claims c;

		assert_int_not_equal(jwt_verify(&hs, py_hs256, i, &c), JWT_OK);
		jwt_claims_release(&c);
	}
	/* padded, whitespace, other alphabet, a flipped signature bit */
	snprintf(buf, sizeof(buf), "%s=", py_hs256);
	assert_int_equal(verify(&hs, buf), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s ", py_hs256);
	assert_int_equal(verify(&hs, buf), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s", py_hs256);
	buf[5] = '+';
	assert_int_equal(verify(&hs, buf), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s", py_hs256);
	buf[n - 3] = buf[n - 3] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(&hs, buf), JWT_SIGNATURE);
	/* 64 KiB, and just over the limit */
	t = malloc(65537);
	assert_non_null(t);
	memset(t, 'A', 65536);
	t[65536] = '\0';
	t[100] = t[200] = '.';
	assert_int_equal(verify(&hs, t), JWT_TOO_LARGE);
	assert_int_equal(jwt_verify(&hs, t, JWT_TOKEN_MAX + 1, &(struct jwt_claims){ 0 }),
	    JWT_TOO_LARGE);
	free(t);
}

/* ---- RS256 / ES256 with keys made here ---- */

static char *
pem_file(EVP_PKEY *k, int private)
{
	char *path = strdup("/tmp/test_jwt_keyXXXXXX");
	int fd = mkstemp(path);
	FILE *fp = fdopen(fd, "w");

	assert_non_null(fp);
	if (private)
		PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_PUBKEY(fp, k);
	fclose(fp);
	return path;
}

/* header.payload signed with k by libcrypto; ES256 converted to r || s. */
static char *
sign_pkey(EVP_PKEY *k, const char *alg, const char *payload)
{
	char header[64], *t = malloc(4096);
	unsigned char sig[1024], raw[64];
	size_t slen = sizeof(sig), o;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const unsigned char *p = sig;
	ECDSA_SIG *es;

	snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
	o = (size_t)b64url_encode(t, 4096, (const unsigned char *)header, strlen(header));
	t[o++] = '.';
	o += (size_t)b64url_encode(t + o, 4096 - o, (const unsigned char *)payload, strlen(payload));
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &slen, (unsigned char *)t, o), 1);
	EVP_MD_CTX_free(ctx);
	if (strcmp(alg, "ES256") == 0) {
		es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
		assert_non_null(es);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
		ECDSA_SIG_free(es);
		memcpy(sig, raw, 64);
		slen = 64;
	}
	t[o++] = '.';
	b64url_encode(t + o, 4096 - o, sig, slen);
	return t;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
bench(const char *what, const struct jwt_verifier *v, const char *t, int n)
{
	double t0 = now_s();
	int i;

	for (i = 0; i < n; i++)
		assert_int_equal(verify(v, t), JWT_OK);
	printf("    cost of one token check, %s: %.1f us (%d checks)\n", what,
	    (now_s() - t0) * 1e6 / n, n);
}

static void
test_public_keys(void **state)
{
	static const char pl[] = "{\"exp\":4102444800,\"sse\":{\"subscribe\":[\"doctor-123\"]}}";
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char *f_rsa = pem_file(rsa, 0), *f_ec = pem_file(ec, 0), *f_priv = pem_file(rsa, 1);
	char *f_small = pem_file(small, 0), *f_384 = pem_file(p384, 0);
	struct jwt_key *krsa, *kec;
	char err[256], *t_rs, *t_es, *t_es2, *t_hs, *bad;
	struct jwt_verifier vrsa = { NULL, 0, NULL, 0, NULL }, vec = vrsa, both;
	const char *mint_sub[] = { "doctor-123" };
	struct jwt_mint m = { NULL, NULL, NULL, 0, 4102444800LL, mint_sub, 1, NULL, 0 };

	(void)state;
	krsa = jwt_key_load(f_rsa, err, sizeof(err));
	assert_non_null(krsa);
	assert_int_equal(jwt_key_alg(krsa), JWT_RS256);
	kec = jwt_key_load(f_ec, err, sizeof(err));
	assert_non_null(kec);
	assert_int_equal(jwt_key_alg(kec), JWT_ES256);
	assert_null(jwt_key_load(f_priv, err, sizeof(err)));
	assert_string_equal(err, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
	assert_null(jwt_key_load(f_small, err, sizeof(err)));
	assert_string_equal(err, "RSA key of 1024 bits, RS256 needs 2048 or more");
	assert_null(jwt_key_load(f_384, err, sizeof(err)));
	assert_non_null(strstr(err, "P-256"));
	assert_null(jwt_key_load("/nonexistent/key.pem", err, sizeof(err)));
	assert_string_equal(err, "cannot open: No such file or directory");

	vrsa.key = krsa;
	vec.key = kec;
	t_rs = sign_pkey(rsa, "RS256", pl);
	t_es = sign_pkey(ec, "ES256", pl);
	t_es2 = sign_pkey(ec2, "ES256", pl);
	t_hs = jwt_mint_hs256(SECRET, 32, &m);
	assert_int_equal(verify(&vrsa, t_rs), JWT_OK);
	assert_int_equal(verify(&vec, t_es), JWT_OK);
	assert_int_equal(verify(&vec, t_es2), JWT_SIGNATURE);     /* another key */
	assert_int_equal(verify(&vrsa, t_es), JWT_ALG);           /* other algorithm */
	assert_int_equal(verify(&vec, t_rs), JWT_ALG);
	assert_int_equal(verify(&vrsa, t_hs), JWT_ALG);           /* HS256 vs RSA-only */
	assert_int_equal(verify(&vec, t_hs), JWT_ALG);
	/* key confusion: HS256 "signed" with the public key's PEM text is still HS256 */
	{
		FILE *fp = fopen(f_rsa, "r");
		char pem[4096];
		size_t n = fread(pem, 1, sizeof(pem) - 1, fp);

		fclose(fp);
		pem[n] = '\0';
		bad = forge("{\"alg\":\"HS256\"}", pl, pem, NULL);
		assert_int_equal(verify(&vrsa, bad), JWT_ALG);
		free(bad);
	}
	/* a 63-byte ES256 signature, an RS256 signature cut short */
	bad = strdup(t_es);
	bad[strlen(bad) - 2] = '\0';
	assert_int_not_equal(verify(&vec, bad), JWT_OK);
	free(bad);
	bad = strdup(t_rs);
	bad[strlen(bad) - 4] = '\0';
	assert_int_not_equal(verify(&vrsa, bad), JWT_OK);
	free(bad);
	/* both configured: each token checked by its own */
	both = vrsa;
	both.secret = SECRET;
	both.secret_len = 32;
	assert_int_equal(verify(&both, t_rs), JWT_OK);
	assert_int_equal(verify(&both, t_hs), JWT_OK);
	assert_int_equal(verify(&both, t_es), JWT_ALG);

	bench("HS256", &hs, t_hs, 20000);
	bench("RS256 (2048-bit key)", &vrsa, t_rs, 2000);
	bench("ES256 (P-256)", &vec, t_es, 2000);

	free(t_rs);
	free(t_es);
	free(t_es2);
	free(t_hs);
	jwt_key_free(krsa);
	jwt_key_free(kec);
	jwt_key_free(NULL);
	unlink(f_rsa);
	unlink(f_ec);
	unlink(f_priv);
	unlink(f_small);
	unlink(f_384);
	free(f_rsa);
	free(f_ec);
	free(f_priv);
	free(f_small);
	free(f_384);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec2);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p384);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_python_vectors),
		cmocka_unit_test(test_mint_round_trip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_malformed_text),
		cmocka_unit_test(test_public_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
