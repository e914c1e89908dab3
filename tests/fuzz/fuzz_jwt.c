/*
 * libFuzzer target: the stream-token path as a request meets it. The input is split at
 * its first NUL into a Cookie header and a REQUEST_URI (no NUL: all of it is the token
 * itself); both go through access_subscribe() with a fixed HS256 config, and the raw
 * input also goes through jwt_verify() directly, so the parser, base64url, the JSON
 * depth scan, jansson and the claim decoding all see arbitrary bytes.
 * Seeds: tests/fuzz/corpus/jwt/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "conf.h"
#include "jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct access *acc;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct jwt_verifier v = { SECRET, 32, NULL, 0, NULL };
	struct conf_jwt j = { 1, SECRET, NULL, NULL, 0, "sse_token", "clinic", "web", 30 };
	struct jwt_claims c;
	char *buf, *uri, err[256];
	const char *why;
	const uint8_t *nul;

	if (acc == NULL && (acc = access_new(&j, "fuzz.conf", err, sizeof(err))) == NULL)
		abort();
	if (jwt_verify(&v, (const char *)data, size, &c) == JWT_OK)
		jwt_claims_release(&c);
	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	nul = memchr(data, 0, size);
	uri = nul != NULL ? buf + (nul - data) + 1 : (char *)"/sse/doctor-123";
	(void)access_subscribe(acc, buf, uri, "doctor-123", 10, 1700000000, &why);
	free(buf);
	return 0;
}
