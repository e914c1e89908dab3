/*
 * access — who may open a stream or publish (SPEC "Access control"). Two layers:
 *
 *   pure functions, no I/O, no allocation: where the token is (cookie, else the `token`
 *   query parameter, else a Bearer header), whether claims are acceptable now (exp
 *   required, nbf, iss, aud, leeway) and whether a grant list covers a resource;
 *
 *   struct access, built from the config's jwt section: the keys (through jwt.h) and the
 *   two decisions the routes ask for, access_subscribe() and access_publish(), which
 *   answer 0 (go on), 401 or 403 with a short reason for the JSON body. Reasons never
 *   contain the token; nothing here logs.
 *
 * A grant is an exact resource name, a prefix ending in '*' (covering every name that
 * starts with the prefix: "doctor-1*" covers "doctor-1" and "doctor-12"; end a prefix
 * with a separator, "doctor-1-*", to mean one family), or "*" (everything).
 */
#ifndef ACCESS_H
#define ACCESS_H

#include <stddef.h>
#include <time.h>

struct conf_jwt;
struct jwt_claims;

/* Why a token is refused; access_reason_text() gives the words. */
enum access_reason {
	ACCESS_OK = 0,
	ACCESS_NO_TOKEN,         /* 401 */
	ACCESS_AMBIGUOUS,        /* 401: two cookies of the name, or two token parameters */
	ACCESS_INVALID,          /* 401: malformed, too large, algorithm, signature */
	ACCESS_NO_EXP,           /* 401 */
	ACCESS_EXPIRED,          /* 401 */
	ACCESS_NOT_YET,          /* 401: nbf in the future */
	ACCESS_ISSUER,           /* 401 */
	ACCESS_AUDIENCE,         /* 401 */
	ACCESS_NOT_GRANTED       /* 403 */
};

const char *access_reason_text(enum access_reason r);

/* 1 when pattern (NUL-terminated) covers the resource name (len bytes), else 0. */
int access_grant_match(const char *pattern, const char *res, size_t len);
/* 1 when any of the n patterns covers the resource. */
int access_grants_cover(const char *const *patterns, size_t n, const char *res, size_t len);
/* 1 when s is a valid grant: "*", or a resource name optionally followed by '*'. */
int access_grant_is_valid(const char *s);

/* The claims' times and issuer/audience against the config: ACCESS_OK or why not.
 * issuer/audience NULL are not checked; leeway widens exp and nbf by that many seconds. */
enum access_reason access_claims_check(const struct jwt_claims *c, const char *issuer,
    const char *audience, long long now, int leeway);

/*
 * Finds the token of a stream request: the cookie named cookie_name in the Cookie
 * header (may be NULL or empty), else the `token` parameter of the query of uri (the raw
 * REQUEST_URI). Returns 1 with *tok and *len pointing into the header or uri, 0 when there is
 * none, -1 when the chosen place holds two (two cookies of that name, two token
 * parameters). A cookie value in double quotes is taken without them.
 */
int access_token_find(const char *cookie, const char *cookie_name, const char *uri,
    const char **tok, size_t *len);

/* The token of an Authorization header ("Bearer", any case, spaces, the token, trailing
 * blanks ignored): 1 with *tok and *len into it, else 0. */
int access_bearer_find(const char *authorization, const char **tok, size_t *len);

/* ---- the decisions ---- */

struct access;

/*
 * Builds the checker for j (keys are copied, the PEM file is read now). NULL on failure
 * with one line in err: "FILE:LINE: jwt.public_key_file: not a PEM public key", file
 * being the config's path. Free with access_free() (NULL is fine).
 */
struct access *access_new(const struct conf_jwt *j, const char *file, char *err,
    size_t errlen);
void access_free(struct access *a);

/* 1 when the section gives a key (a secret or a public key), so tokens can be checked. */
int access_has_keys(const struct access *a);

/*
 * May this stream request open resource (len bytes)? a NULL or subscribe off: 0. Else 0,
 * or 401/403 with *why set to a static reason. Costs one signature check and one small
 * JSON parse.
 */
int access_subscribe(const struct access *a, const char *cookie, const char *uri,
    const char *res, size_t len, time_t now, const char **why);

/*
 * May this request publish to (or count) resource? publish_token (NULL = unset) is the
 * config's static token, checked in constant time. Open (0) when neither it nor a key is
 * configured; else the Bearer value must be publish_token or a token whose sse.publish
 * covers the resource: 0, 401, or 403 (a valid token without the grant).
 */
int access_publish(const struct access *a, const char *publish_token,
    const char *authorization, const char *res, size_t len, time_t now, const char **why);

#endif
