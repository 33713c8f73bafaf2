/*
 * The web console's side of quelld.
 *
 * Files: served from one directory ([web] root), GET and HEAD only, regular files
 * only, by an allow-list of names (no dot-segments, no dotfiles) whose resolved path
 * must still lie under the root, with a strict Content-Security-Policy.
 *
 * Sessions: a browser signs in by posting an API token, which is checked exactly as a
 * bearer token is. The session id (256 random bits) goes to the browser in an
 * HttpOnly, SameSite=Strict cookie and is stored only as its SHA-256, so a copy of the
 * database yields no usable cookie. Sessions are rows of the store, so a session
 * opened on one node of a cluster is good on every other, and a sign-out on one ends
 * it on all. The CSRF token is derived from the id (a hash under another prefix): it
 * is stored nowhere, and the stored hash gives neither back. Each request re-reads the token's
 * principal from the store, so a changed role applies at once and a removed token
 * ends its sessions. Every state change made with the cookie must carry the session's
 * CSRF token in X-CSRF-Token: SameSite already keeps other sites' requests from
 * carrying the cookie, and the header is a second lock that a form or a link cannot
 * open.
 *
 * OpenID Connect (authorization code + PKCE) where [oidc] names a client_id: /start
 * sends the browser to the issuer with a state, nonce and PKCE challenge derived from
 * a fresh short-lived pre-session cookie (SameSite=Lax: the issuer's redirect back is
 * a cross-site navigation, which a Strict cookie would not survive), whose hash the
 * store keeps so that the callback may reach any node; /callback takes that login
 * out of the store (one use only), checks the state,
 * redeems the code with the verifier (oidc.c) and opens a session holding the id
 * token's claims. Such a session is authorized from those claims through the same
 * policy as a bearer JWT; they are fixed at sign-in, so a role changed at the issuer
 * applies from the next sign-in (sessions expire: [web] session_lifetime).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/id.h"
#include "core/log.h"
#include "core/rbac.h"
#include "web.h"

#define COOKIE_NAME "quell_session"
#define LOGIN_COOKIE "quell_oidc"
#define OIDC_PATH "/api/v1/session/oidc"
#define LOGIN_TTL_S 600
/* Sign-ins under way at once; the oldest gives way (each one is 10 minutes at most). */
#define LOGINS_MAX 1024
#define REDIRECT_MAX 512
#define HOST_MAX 255
#define CODE_MAX 4096
#define SECRET_BYTES 32
/* base64url without padding of SECRET_BYTES */
#define SECRET_B64 43
#define COOKIE_HEADER_MAX 8192
#define FILE_MAX (8L << 20)
#define PATH_MAX_LEN 255
#define TOKEN_MAX 256

#define IDLE_DEFAULT_S (8 * 3600)
#define LIFE_DEFAULT_S (12 * 3600)
#define SESSIONS_DEFAULT 1000
#define SESSIONS_MAX 100000
#define PER_PRINCIPAL_DEFAULT 10

/*
 * The policy every console file is sent with: nothing but our own origin, no inline
 * script or style, no framing, no plugins, forms only to us.
 */
static const char csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

/* An OpenID Connect sign-in between /start and /callback: a row of the store (the
 * pre-session cookie's hash, the redirect URI, when it began); its state, nonce and
 * PKCE verifier are derived from the cookie, so the store holds none of them. */
struct login {
	char state[SECRET_B64 + 1];
	char nonce[SECRET_B64 + 1];
	char verifier[SECRET_B64 + 1];	/* PKCE: never leaves quelld but to the issuer */
	char redirect_uri[REDIRECT_MAX];
	int64_t created_ms;
};

struct web {
	char *root;		/* resolved; NULL when no console files are installed */
	size_t rootlen;
	bool tls;
	int64_t idle_ms;
	int64_t life_ms;
	size_t max;
	size_t per_principal;	/* sessions one principal may hold at once */
};

/* What a looked-up session lends the request, copied out from under the lock. */
struct session_view {
	char csrf[SECRET_B64 + 1];
	char token_id[ID_LEN];
	unsigned char token_hash[32];
	bool oidc;
	struct oidc_claims claims;	/* a copy, the view's own */
	int64_t expires_ms;
};

static void
view_wipe(struct session_view *v)
{
	oidc_claims_clear(&v->claims);
	sodium_memzero(v, sizeof(*v));
}

static void
login_wipe(struct login *l)
{
	sodium_memzero(l, sizeof(*l));
}

/* ------------------------------------------------------------------ configuration */

/* "90", "90s", "30m", "8h", "2d" → seconds in [60, 30 days]; -1 if not. */
static long
parse_duration(const char *s)
{
	char *end;
	long n, mul = 1;

	errno = 0;
	n = strtol(s, &end, 10);
	if (end == s || errno != 0 || n < 0 || n > 30L * 86400)
		return -1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	else if (*end == 'd')
		mul = 86400, end++;
	if (*end != '\0' || n * mul < 60 || n * mul > 30L * 86400)
		return -1;
	return n * mul;
}

/* Whether the running binary lies in the build tree (then the source's web/ is used). */
static bool
running_from_build_tree(void)
{
	char exe[PATH_MAX], build[PATH_MAX];
	size_t n;

	if (realpath("/proc/self/exe", exe) == NULL ||
	    realpath(QUELL_BUILD_ROOT, build) == NULL)
		return false;
	n = strlen(build);
	return strncmp(exe, build, n) == 0 && exe[n] == '/';
}

static int
set_root(struct web *w, const char *dir, const struct config_kv *kv,
    const struct config *cfg, struct qerr *e)
{
	char real[PATH_MAX];
	struct stat sb;

	if (realpath(dir, real) == NULL || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		if (kv != NULL)
			return qerr_set(e, QERR_CONFIG, "root",
			    "%s:%d: [web] root '%s' is not a directory", cfg->file, kv->line,
			    dir);
		log_msg(LOG_LVL_WARN, "no web console files at %s: the console is off",
		    dir);
		return 0;
	}
	if ((w->root = strdup(real)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	w->rootlen = strlen(real);
	return 0;
}

static int
parse_config(struct web *w, const struct config *cfg, const struct config_kv **root,
    struct qerr *e)
{
	const struct system_config *sec = &cfg->web;
	const struct config_kv *kv;
	long v;
	char *end;
	size_t i;

	for (i = 0; i < sec->nkv; i++) {
		kv = &sec->kv[i];
		if (strcmp(kv->key, "root") == 0) {
			if (kv->value[0] == '\0')
				return qerr_set(e, QERR_CONFIG, "root",
				    "%s:%d: [web] root must name a directory", cfg->file,
				    kv->line);
			*root = kv;
		} else if (strcmp(kv->key, "session_idle") == 0 ||
		    strcmp(kv->key, "session_lifetime") == 0) {
			if ((v = parse_duration(kv->value)) < 0)
				return qerr_set(e, QERR_CONFIG, kv->key,
				    "%s:%d: [web] %s must be a duration from 60s to 30d "
				    "(e.g. 8h), not '%s'", cfg->file, kv->line, kv->key,
				    kv->value);
			if (kv->key[8] == 'i')
				w->idle_ms = v * 1000;
			else
				w->life_ms = v * 1000;
		} else if (strcmp(kv->key, "max_sessions") == 0) {
			errno = 0;
			v = strtol(kv->value, &end, 10);
			if (end == kv->value || *end != '\0' || errno != 0 || v < 1 ||
			    v > SESSIONS_MAX)
				return qerr_set(e, QERR_CONFIG, kv->key,
				    "%s:%d: [web] max_sessions must be 1 to %d, not '%s'",
				    cfg->file, kv->line, SESSIONS_MAX, kv->value);
			w->max = (size_t)v;
		} else if (strcmp(kv->key, "max_sessions_per_principal") == 0) {
			errno = 0;
			v = strtol(kv->value, &end, 10);
			if (end == kv->value || *end != '\0' || errno != 0 || v < 1 ||
			    v > SESSIONS_MAX || kv->value[0] < '0' || kv->value[0] > '9')
				return qerr_set(e, QERR_CONFIG, kv->key,
				    "%s:%d: [web] max_sessions_per_principal must be 1 to %d, "
				    "not '%s'", cfg->file, kv->line, SESSIONS_MAX, kv->value);
			w->per_principal = (size_t)v;
		} else
			return qerr_set(e, QERR_CONFIG, kv->key,
			    "%s:%d: unknown key '%s' in [web] (root, session_idle, "
			    "session_lifetime, max_sessions, max_sessions_per_principal)",
			    cfg->file, kv->line, kv->key);
	}
	/* A small table caps each principal at its own size. */
	if (w->per_principal > w->max)
		w->per_principal = w->max;
	if (w->idle_ms > w->life_ms)
		return qerr_set(e, QERR_CONFIG, "session_idle",
		    "%s:%d: [web] session_idle is longer than session_lifetime", cfg->file,
		    sec->line);
	return 0;
}

int
web_open(const struct config *cfg, bool tls, struct web **out, struct qerr *e)
{
	const struct config_kv *root = NULL;
	struct web *w;
	int r;

	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	w->tls = tls;
	w->idle_ms = IDLE_DEFAULT_S * 1000L;
	w->life_ms = LIFE_DEFAULT_S * 1000L;
	w->max = SESSIONS_DEFAULT;
	w->per_principal = PER_PRINCIPAL_DEFAULT;
	if ((r = parse_config(w, cfg, &root, e)) != 0)
		goto out;
	if (root != NULL)
		r = set_root(w, root->value, root, cfg, e);
	else
		r = set_root(w, running_from_build_tree() ? QUELL_WEB_SRC : QUELL_WEB_DIR,
		    NULL, cfg, e);
	if (r != 0)
		goto out;
	*out = w;
	w = NULL;
out:
	web_close(w);
	return r;
}

void
web_close(struct web *w)
{
	if (w == NULL)
		return;
	free(w->root);
	free(w);
}

/* ------------------------------------------------------------------------ answers */

static void
security_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Content-Security-Policy", csp);
}

/* ------------------------------------------------------------------------- files */

static const char *
content_type(const char *path)
{
	static const struct {
		const char *ext;
		const char *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	if (dot == NULL || strchr(dot, '/') != NULL)
		return NULL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

/*
 * Whether the (already percent-decoded) path may name a console file: letters,
 * digits, '-', '_', '.' and '/', no empty segment, no segment starting with a dot (so
 * neither ".." nor a dotfile). Anything else is refused before the file system sees it.
 */
static bool
path_allowed(const char *p)
{
	size_t i, n = strlen(p);

	if (n < 2 || n > PATH_MAX_LEN || p[0] != '/')
		return false;
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c == '/') {
			if (p[i + 1] == '/' || p[i + 1] == '.' || p[i + 1] == '\0')
				return false;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static enum MHD_Result
send_file(struct req *q)
{
	struct web *w = q->api->web;
	const char *path = strcmp(q->path, "/") == 0 ? "/index.html" : q->path;
	char full[PATH_MAX], real[PATH_MAX];
	struct MHD_Response *resp;
	const char *type;
	struct stat sb;
	enum MHD_Result ret;
	int fd = -1;

	if (w->root == NULL) {
		req_error(q, 404, "not_found", NULL, "the web console is not installed");
		return req_send_json(q, NULL);
	}
	if (!path_allowed(path) || (type = content_type(path)) == NULL ||
	    (size_t)snprintf(full, sizeof(full), "%s%s", w->root, path) >= sizeof(full) ||
	    realpath(full, real) == NULL || strncmp(real, w->root, w->rootlen) != 0 ||
	    real[w->rootlen] != '/' ||
	    (fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > FILE_MAX) {
		if (fd >= 0)
			close(fd);
		req_error(q, 404, "not_found", NULL, "no such file");
		return req_send_json(q, NULL);
	}
	/* MHD owns fd from here, also when it fails. */
	if ((resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd)) == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	/* Small files, changed by an upgrade: the browser asks again every time. */
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	security_headers(resp);
	ret = MHD_queue_response(q->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---------------------------------------------------------------------- sessions */

/*
 * The value of cookie name in q's Cookie header into out (SECRET_B64 + 1 bytes): 1
 * found and well-formed, 0 absent, -1 present but malformed. The header is read at
 * most COOKIE_HEADER_MAX bytes deep.
 */
static int
named_cookie(struct req *q, const char *cname, char *out)
{
	const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_COOKIE);
	const char *p, *name, *val;
	size_t n, namelen, vlen, i;

	if (h == NULL)
		return 0;
	n = strnlen(h, COOKIE_HEADER_MAX + 1);
	if (n > COOKIE_HEADER_MAX)
		return 0;
	for (p = h; p < h + n;) {
		while (p < h + n && (*p == ' ' || *p == ';'))
			p++;
		name = p;
		while (p < h + n && *p != '=' && *p != ';')
			p++;
		namelen = (size_t)(p - name);
		if (p < h + n && *p == '=')
			p++;
		val = p;
		while (p < h + n && *p != ';')
			p++;
		vlen = (size_t)(p - val);
		while (vlen > 0 && val[vlen - 1] == ' ')
			vlen--;
		if (namelen != strlen(cname) || memcmp(name, cname, namelen) != 0)
			continue;
		if (vlen != SECRET_B64)
			return -1;
		for (i = 0; i < vlen; i++)
			if (!((val[i] >= 'a' && val[i] <= 'z') ||
			    (val[i] >= 'A' && val[i] <= 'Z') ||
			    (val[i] >= '0' && val[i] <= '9') || val[i] == '-' ||
			    val[i] == '_'))
				return -1;
		memcpy(out, val, vlen);
		out[vlen] = '\0';
		return 1;
	}
	return 0;
}

static int
cookie_value(struct req *q, char *out)
{
	return named_cookie(q, COOKIE_NAME, out);
}

static void
hash_id(const char *id, unsigned char out[32])
{
	crypto_hash_sha256(out, (const unsigned char *)id, strlen(id));
}

/* SHA-256 of text as the store keeps it, 64 hex digits into out (65 bytes). */
static void
hash_hex(const char *text, char *out)
{
	unsigned char h[32];

	hash_id(text, h);
	sodium_bin2hex(out, 65, h, sizeof(h));
	sodium_memzero(h, sizeof(h));
}

/* A secret derived from the secret id for one use (label), as base64url text into
 * out (SECRET_B64 + 1 bytes): a hash under the label, which neither the id's stored
 * hash nor another label's secret gives back. */
static void
derive(const char *id, const char *label, char *out)
{
	crypto_hash_sha256_state st;
	unsigned char h[32];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)"quell ", 6);
	crypto_hash_sha256_update(&st, (const unsigned char *)label, strlen(label));
	crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)id, strlen(id));
	crypto_hash_sha256_final(&st, h);
	sodium_bin2base64(out, SECRET_B64 + 1, h, sizeof(h),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
}

/* The session's CSRF token (SECRET_B64 + 1 bytes into out), from its id. */
static void
csrf_of(const char *id, char *out)
{
	derive(id, "console csrf", out);
}

/* 256 random bits as base64url text into out (SECRET_B64 + 1 bytes). */
static void
random_text(char *out)
{
	unsigned char raw[SECRET_BYTES];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, SECRET_B64 + 1, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

static json_t *
strings_json(char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* An OpenID Connect session's claims as the store keeps them; NULL: out of memory. */
static char *
claims_dump(const struct oidc_claims *c)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:I}", "subject", c->subject,
	    "username", c->username, "roles", strings_json(c->roles, c->nroles), "wids",
	    strings_json(c->wids, c->nwids), "exp", (json_int_t)c->exp);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

static int
strings_load(const json_t *a, char ***v, size_t *n)
{
	size_t i;

	if (!json_is_array(a))
		return -1;
	if (json_array_size(a) > 0 &&
	    (*v = calloc(json_array_size(a), sizeof(**v))) == NULL)
		return -1;
	for (i = 0; i < json_array_size(a); i++) {
		if (!json_is_string(json_array_get(a, i)) ||
		    ((*v)[i] = strdup(json_string_value(json_array_get(a, i)))) == NULL)
			return -1;
		*n = i + 1;
	}
	return 0;
}

/* The claims claims_dump wrote into *c (cleared on failure). */
static int
claims_load(const char *text, struct oidc_claims *c, struct qerr *e)
{
	json_t *o = json_loads(text, 0, NULL);
	const char *sub = json_string_value(json_object_get(o, "subject"));
	const char *user = json_string_value(json_object_get(o, "username"));
	int r = 0;

	memset(c, 0, sizeof(*c));
	if (sub == NULL || user == NULL || (c->subject = strdup(sub)) == NULL ||
	    (c->username = strdup(user)) == NULL ||
	    strings_load(json_object_get(o, "roles"), &c->roles, &c->nroles) != 0 ||
	    strings_load(json_object_get(o, "wids"), &c->wids, &c->nwids) != 0) {
		oidc_claims_clear(c);
		r = qerr_set(e, QERR_INTERNAL, NULL, "a stored console session's claims "
		    "cannot be read");
	} else
		c->exp = json_integer_value(json_object_get(o, "exp"));
	json_decref(o);
	return r;
}

static bool
expired(const struct web *w, const struct store_session *s, int64_t now_us)
{
	return now_us - s->used_us > w->idle_ms * 1000 ||
	    now_us - s->created_us > w->life_ms * 1000;
}

/* A session's use is written at most this often: a tenth of the idle time, at most
 * a minute, so that reading pages does not make every request a write. */
static int64_t
touch_gap_us(const struct web *w)
{
	int64_t gap = w->idle_ms * 100;

	return gap < 60000000 ? gap : 60000000;
}

/* The row of a new session for principal; fields borrowed from the arguments. */
static int
session_row(const char *idh, const char *ph, const char *token_id, const char *th,
    const struct oidc_claims *claims, int64_t now, struct store_session *s,
    struct qerr *e)
{
	memset(s, 0, sizeof(*s));
	s->id_hash = (char *)idh;
	s->principal_hash = (char *)ph;
	s->created_us = s->used_us = now;
	if (claims == NULL) {
		s->token_id = (char *)token_id;
		s->token_hash = (char *)th;
		return 0;
	}
	if ((s->claims = claims_dump(claims)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/*
 * Opens a session for principal (the request's who.id) of API token token_id (whose
 * stored hash is token_hash), or, with claims, for the OpenID Connect principal they
 * describe: writes the cookie's value into id and the CSRF token into csrf (both
 * SECRET_B64 + 1 bytes). A principal at its cap gives up its own least recently used
 * session; a full table refuses (QERR_BUSY) rather than evict anyone else's, so no
 * principal can sign another out. One write transaction: two nodes cannot both fill
 * the last place.
 */
static int
session_new(struct web *w, struct store *st, const char *principal,
    const char *token_id, const unsigned char token_hash[32],
    const struct oidc_claims *claims, char *id, char *csrf, struct qerr *e)
{
	struct store_session s;
	struct store_tx *tx = NULL;
	char idh[65], ph[65], th[65] = "";
	int64_t now = engine_now_us();
	long all = 0, own = 0;
	char *lru = NULL;
	int r;

	random_text(id);
	csrf_of(id, csrf);
	hash_hex(id, idh);
	hash_hex(principal, ph);
	if (claims == NULL)
		sodium_bin2hex(th, sizeof(th), token_hash, 32);
	if ((r = session_row(idh, ph, token_id, th, claims, now, &s, e)) != 0)
		return r;
	if ((r = store_tx_begin(st, true, &tx, e)) != 0 ||
	    (r = store_session_prune(tx, now - w->idle_ms * 1000, now - w->life_ms * 1000,
	    e)) != 0 || (r = store_session_count(tx, ph, &all, &own, &lru, e)) != 0)
		goto out;
	if (lru != NULL && ((size_t)own >= w->per_principal || (size_t)all >= w->max))
		r = store_session_delete(tx, lru, NULL, e);
	else if ((size_t)all >= w->max)
		r = qerr_set(e, QERR_BUSY, NULL, "the console's session table is full "
		    "([web] max_sessions): try again when sessions have expired");
	if (r == 0 && (r = store_session_insert(tx, &s, e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
out:
	store_tx_rollback(tx);
	free(lru);
	free(s.claims);
	sodium_memzero(idh, sizeof(idh));
	return r;
}

/* Marks the session used, when it was not lately; a failure only loses the mark. */
static void
session_touch(struct web *w, struct store *st, const struct store_session *s,
    int64_t now)
{
	struct store_tx *tx = NULL;
	struct qerr e;

	if (now - s->used_us < touch_gap_us(w))
		return;
	if (store_tx_begin(st, true, &tx, &e) == 0 &&
	    store_session_touch(tx, s->id_hash, now, &e) == 0 &&
	    store_tx_commit(tx, &e) == 0)
		tx = NULL;
	store_tx_rollback(tx);
}

/* What the request needs of the stored session s whose cookie is id. */
static int
session_view_fill(struct web *w, const char *id, const struct store_session *s,
    struct session_view *v, struct qerr *e)
{
	csrf_of(id, v->csrf);
	v->expires_ms = (s->created_us + w->life_ms * 1000) / 1000;
	if (s->claims != NULL) {
		v->oidc = true;
		return claims_load(s->claims, &v->claims, e);
	}
	if (s->token_id == NULL || s->token_hash == NULL ||
	    strlen(s->token_id) >= sizeof(v->token_id) ||
	    sodium_hex2bin(v->token_hash, sizeof(v->token_hash), s->token_hash,
	    strlen(s->token_hash), NULL, NULL, NULL) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "a stored console session's token "
		    "cannot be read");
	snprintf(v->token_id, sizeof(v->token_id), "%s", s->token_id);
	return 0;
}

/*
 * Looks the cookie's session up in the store, marks it used and copies it into *v:
 * 1 found, 0 not (or expired), a negative error from the store.
 */
static int
session_use(struct web *w, struct store *st, const char *id, struct session_view *v,
    struct qerr *e)
{
	struct store_session s;
	struct store_tx *tx = NULL;
	int64_t now = engine_now_us();
	char idh[65];
	int r;

	memset(&s, 0, sizeof(s));
	hash_hex(id, idh);
	if ((r = store_tx_begin(st, false, &tx, e)) != 0)
		return r;
	r = store_session_get(tx, idh, &s, e);
	store_tx_rollback(tx);
	if (r == QERR_NOT_FOUND || (r == 0 && expired(w, &s, now))) {
		r = 0;
		goto out;
	}
	if (r != 0)
		goto out;
	session_touch(w, st, &s, now);
	r = session_view_fill(w, id, &s, v, e);
	r = r != 0 ? r : 1;
out:
	store_session_clear(&s);
	sodium_memzero(idh, sizeof(idh));
	return r;
}

/* Ends the session of cookie id, or (id NULL) every session of token_id. */
static void
session_end(struct store *st, const char *id, const char *token_id)
{
	struct store_tx *tx = NULL;
	char idh[65];
	struct qerr e;

	if (id != NULL)
		hash_hex(id, idh);
	if (store_tx_begin(st, true, &tx, &e) == 0 &&
	    store_session_delete(tx, id != NULL ? idh : NULL, token_id, &e) == 0 &&
	    store_tx_commit(tx, &e) == 0)
		tx = NULL;
	else
		log_msg(LOG_LVL_WARN, "console session end: %s", e.msg);
	store_tx_rollback(tx);
	sodium_memzero(idh, sizeof(idh));
}

/*
 * The principal of an OpenID Connect session: its claims move to the request, where
 * authorization reads them as it reads a bearer JWT's.
 */
static int
session_claims(struct req *q, struct oidc_claims *c, struct qerr *e)
{
	q->claims = *c;
	memset(c, 0, sizeof(*c));
	q->has_claims = true;
	if (asprintf(&q->who.id, "oidc:%s", q->claims.subject) < 0) {
		q->who.id = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	if ((q->who.name = strdup(q->claims.username)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/*
 * The principal of the session's token as the store knows it now: a token revoked,
 * expired or gone since sign-in ends every session opened with it.
 */
static int
session_principal(struct req *q, struct session_view *v, struct qerr *e)
{
	int r;

	if (v->oidc)
		return session_claims(q, &v->claims, e);
	r = auth_token_principal(q->api->st, v->token_id, v->token_hash, &q->who, e);
	if (r == QERR_NOT_FOUND || r == QERR_UNAUTHENTICATED)
		session_end(q->api->st, NULL, v->token_id);
	if (r == QERR_NOT_FOUND)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL,
		    "the token this session was opened with no longer exists");
	return r;
}

static bool
state_changing(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    strcmp(method, "OPTIONS") != 0;
}

bool
web_has_session(struct req *q)
{
	char id[SECRET_B64 + 1];
	bool has;

	if (q->api->web == NULL || MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION) != NULL)
		return false;
	has = cookie_value(q, id) != 0;
	sodium_memzero(id, sizeof(id));
	return has;
}

/* web_authenticate(), also telling the session's CSRF token and expiry. */
static bool
authenticate_session(struct req *q, struct session_view *v)
{
	const char *sent;
	char id[SECRET_B64 + 1];
	struct qerr e;
	bool ok = false;
	int r;

	qerr_clear(&e);
	memset(v, 0, sizeof(*v));
	if (cookie_value(q, id) != 1 || (r = session_use(q->api->web, q->api->st, id, v,
	    &e)) == 0) {
		req_error(q, 401, "unauthenticated", NULL,
		    "the session has expired or was ended: sign in again");
		req_audit_denial(q, "auth.failed", "no live session for the cookie");
		goto out;
	}
	if (r < 0) {
		req_qerr(q, r, &e);
		goto out;
	}
	if ((r = session_principal(q, v, &e)) != 0) {
		if (r == QERR_UNAUTHENTICATED) {
			req_error(q, 401, "unauthenticated", NULL, "%s", e.msg);
			req_audit_denial(q, "auth.failed", e.msg);
		} else
			req_qerr(q, r, &e);
		goto out;
	}
	if (!q->has_claims && !rbac_role_perms(q->api->cfg, q->who.role, &q->perms))
		q->perms = 0;
	if (state_changing(q->method)) {
		sent = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "X-CSRF-Token");
		if (sent == NULL || strlen(sent) != SECRET_B64 ||
		    sodium_memcmp(sent, v->csrf, SECRET_B64) != 0) {
			req_error(q, 403, "csrf", "X-CSRF-Token",
			    "a change made with a session cookie needs the session's "
			    "X-CSRF-Token header");
			req_audit_denial(q, "csrf.refused",
			    "missing or wrong X-CSRF-Token with a session cookie");
			goto out;
		}
	}
	ok = true;
out:
	sodium_memzero(id, sizeof(id));
	return ok;
}

bool
web_authenticate(struct req *q)
{
	struct session_view v;
	bool ok;

	ok = authenticate_session(q, &v);
	view_wipe(&v);
	return ok;
}

/*
 * {"name","role","method","permissions","csrf_token","expires_at_ms","idle_timeout_s"}
 * of the signed-in caller; role is null for an OpenID Connect principal, whose
 * permissions come from its claims.
 */
static json_t *
session_json(const struct req *q, const char *csrf, int64_t expires_ms)
{
	json_t *perms = json_array();
	int i;

	for (i = 0; i < PERM_COUNT; i++)
		if (q->perms & (1u << i))
			json_array_append_new(perms, json_string(rbac_perm_name(1u << i)));
	return json_pack("{s:s, s:s?, s:s, s:o, s:s, s:I, s:I}", "name", q->who.name,
	    "role", q->has_claims ? NULL : q->who.role, "method",
	    q->has_claims ? "oidc" : "token", "permissions", perms, "csrf_token", csrf,
	    "expires_at_ms",
	    (json_int_t)expires_ms, "idle_timeout_s",
	    (json_int_t)(q->api->web->idle_ms / 1000));
}

/* Audits a session's start or end: by API token (its id) or by OpenID Connect. */
static void
audit_session(struct req *q, const char *event, const char *token_id)
{
	json_t *d = q->has_claims ?
	    json_pack("{s:s, s:s, s:s, s:s}", "method", "oidc", "subject", q->who.id,
	    "issuer", oidc_issuer(q->api->oidc), "via", "web console") :
	    json_pack("{s:s, s:s, s:s}", "method", "token", "token_id", token_id, "via",
	    "web console");
	struct actor who;
	struct qerr e;

	req_actor(q, &who);
	if (d == NULL || engine_audit_as(q->api->eng, &who, event, NULL, d, &e) != 0)
		log_msg(LOG_LVL_ERROR, "audit of %s failed", event);
	json_decref(d);
}

/* POST /api/v1/session {"token": "<API token>"}: signs in. */
static enum MHD_Result
sign_in(struct req *q)
{
	struct web *w = q->api->web;
	char id[SECRET_B64 + 1], csrf[SECRET_B64 + 1], cookie[160];
	unsigned char th[32];
	const char *k, *tok;
	json_t *o, *t, *v;
	struct qerr e;
	enum MHD_Result ret;
	int64_t now;
	int r;

	memset(id, 0, sizeof(id));
	memset(csrf, 0, sizeof(csrf));
	cookie[0] = '\0';
	qerr_clear(&e);
	if ((o = req_json(q)) == NULL)
		return req_send_json(q, NULL);
	json_object_foreach(o, k, v)
		if (strcmp(k, "token") != 0) {
			req_error(q, 400, "invalid_input", "body",
			    "unknown field '%.100s': send {\"token\": \"…\"}", k);
			goto out;
		}
	t = json_object_get(o, "token");
	if (!json_is_string(t) || (tok = json_string_value(t))[0] == '\0' ||
	    strlen(tok) != json_string_length(t) || strlen(tok) > TOKEN_MAX) {
		req_error(q, 400, "invalid_input", "token",
		    "token must be an API token (qt_….…)");
		goto out;
	}
	if ((r = auth_token_check(q->api->st, tok, &q->who, &e)) != 0) {
		if (r == QERR_UNAUTHENTICATED) {
			req_error(q, 401, "unauthenticated", "token", "%s", e.msg);
			req_audit_denial(q, "auth.failed", e.msg);
		} else
			req_qerr(q, r, &e);
		goto out;
	}
	if (!req_authorize(q))
		goto out;
	/* The same hash auth.c stores: the session is bound to this very token. */
	crypto_hash_sha256(th, (const unsigned char *)tok, strlen(tok));
	now = engine_now_ms();
	if ((r = session_new(w, q->api->st, q->who.id, q->who.id, th, NULL, id, csrf,
	    &e)) != 0) {
		if (r == QERR_BUSY)
			req_error(q, 503, "unavailable", NULL, "%s", e.msg);
		else
			req_qerr(q, r, &e);
		goto out;
	}
	snprintf(cookie, sizeof(cookie),
	    COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", id,
	    (long long)(w->life_ms / 1000), w->tls ? "; Secure" : "");
	audit_session(q, "session.created", q->who.id);
	req_reply(q, 200, session_json(q, csrf, now + w->life_ms));
out:
	/* The token sits in the parsed body: wipe it before the body is freed. */
	if ((t = json_object_get(o, "token")) != NULL && json_is_string(t))
		sodium_memzero((char *)json_string_value(t), json_string_length(t));
	json_decref(o);
	if (q->body != NULL)
		sodium_memzero(q->body, q->len);
	ret = req_send_json(q, cookie[0] ? cookie : NULL);
	sodium_memzero(cookie, sizeof(cookie));
	sodium_memzero(id, sizeof(id));
	sodium_memzero(csrf, sizeof(csrf));
	return ret;
}

/* GET /api/v1/session: who is signed in, and the CSRF token a reloaded page needs. */
static enum MHD_Result
who(struct req *q)
{
	struct session_view v;

	/* The permissions shown are the policy's, as every API request gets them. */
	if (authenticate_session(q, &v) && req_authorize(q))
		req_reply(q, 200, session_json(q, v.csrf, v.expires_ms));
	view_wipe(&v);
	return req_send_json(q, NULL);
}

/* DELETE /api/v1/session: signs out; the cookie is cleared either way. */
static enum MHD_Result
sign_out(struct req *q)
{
	static const char clear[] = COOKIE_NAME
	    "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";
	struct session_view v;
	char id[SECRET_B64 + 1];

	if (authenticate_session(q, &v)) {
		if (cookie_value(q, id) == 1)
			session_end(q->api->st, id, NULL);
		sodium_memzero(id, sizeof(id));
		audit_session(q, "session.ended", v.token_id);
		req_reply(q, 200, json_pack("{s:b}", "signed_out", 1));
	}
	view_wipe(&v);
	/* A refused CSRF keeps the cookie: the request did not come from our page. */
	return req_send_json(q, q->status == 403 ? NULL : clear);
}

/* ------------------------------------------------------------ OpenID Connect */

/* A login's state, nonce and verifier, from its pre-session cookie pre. */
static void
login_secrets(const char *pre, struct login *l)
{
	derive(pre, "oidc state", l->state);
	derive(pre, "oidc nonce", l->nonce);
	derive(pre, "oidc verifier", l->verifier);
}

/* Opens a login for the pre-session cookie pre (LOGINS_MAX at most under way: the
 * oldest gives way), shared by every node: the callback may reach another. */
static int
login_new(struct store *st, const char *pre, const char *redirect_uri, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int64_t now = engine_now_us();
	char h[65];
	int r;

	hash_hex(pre, h);
	if ((r = store_tx_begin(st, true, &tx, e)) == 0 &&
	    (r = store_login_insert(tx, h, redirect_uri, now, now - LOGIN_TTL_S *
	    1000000LL, LOGINS_MAX, e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	sodium_memzero(h, sizeof(h));
	return r;
}

/* Takes the live login of pre-session cookie pre out of the store: one use only. */
static bool
login_take(struct store *st, const char *pre, struct login *out)
{
	struct store_tx *tx = NULL;
	int64_t now = engine_now_us(), at = 0;
	char h[65], *uri = NULL;
	struct qerr e;
	bool found = false;

	hash_hex(pre, h);
	if (store_tx_begin(st, true, &tx, &e) == 0 &&
	    store_login_take(tx, h, &uri, &at, &e) == 0 &&
	    store_tx_commit(tx, &e) == 0) {
		tx = NULL;
		found = now - at <= LOGIN_TTL_S * 1000000LL &&
		    strlen(uri) < sizeof(out->redirect_uri);
	}
	store_tx_rollback(tx);
	if (found) {
		login_secrets(pre, out);
		snprintf(out->redirect_uri, sizeof(out->redirect_uri), "%s", uri);
		out->created_ms = at / 1000;
	}
	free(uri);
	sodium_memzero(h, sizeof(h));
	return found;
}

/* Where the issuer sends the browser back: [oidc] redirect_uri, else this host. */
static bool
redirect_uri_for(struct req *q, char *out, size_t outlen)
{
	const char *conf = oidc_redirect_uri(q->api->oidc);
	const char *host;
	size_t i, n;

	if (conf != NULL)
		return (size_t)snprintf(out, outlen, "%s", conf) < outlen;
	host = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (host == NULL || (n = strnlen(host, HOST_MAX + 1)) == 0 || n > HOST_MAX)
		return false;
	/* A name or address and a port, nothing that could change the URL's shape. */
	for (i = 0; i < n; i++)
		if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' &&
		    host[i] <= 'Z') || (host[i] >= '0' && host[i] <= '9') ||
		    strchr(".-:[]", host[i]) != NULL))
			return false;
	return (size_t)snprintf(out, outlen, "%s://%s" OIDC_PATH "/callback",
	    q->api->web->tls ? "https" : "http", host) < outlen;
}

static enum MHD_Result
send_redirect(struct req *q, const char *location, const char *cookie,
    const char *cookie2)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	security_headers(resp);
	if (cookie != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	if (cookie2 != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie2);
	ret = MHD_queue_response(q->conn, MHD_HTTP_FOUND, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Whether the caller asked for JSON rather than a page (a script, not a browser). */
static bool
wants_json(struct req *q)
{
	const char *a = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_ACCEPT);

	return a != NULL && strstr(a, "application/json") != NULL &&
	    strstr(a, "text/html") == NULL;
}

/* text with & < > " ' as entities into out (NUL-terminated, truncated to fit). */
static void
html_escape(const char *text, char *out, size_t outlen)
{
	size_t n = 0, k;
	const char *rep;
	char one[2] = { 0, 0 };

	for (; *text != '\0'; text++) {
		switch (*text) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			one[0] = *text;
			rep = one;
			break;
		}
		k = strlen(rep);
		if (n + k + 1 > outlen)
			break;
		memcpy(out + n, rep, k);
		n += k;
	}
	out[n] = '\0';
}

/*
 * A failed OpenID Connect sign-in: audited as auth.failed with why, answered with a
 * page a person can read (or JSON for a script), the pre-session cookie cleared.
 */
static enum MHD_Result
oidc_fail(struct req *q, unsigned status, const char *code, const char *why)
{
	static const char clear[] = LOGIN_COOKIE "=; Path=" OIDC_PATH
	    "; HttpOnly; SameSite=Lax; Max-Age=0";
	static const char page[] = "<!doctype html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\"><title>Sign-in failed — quell</title><link rel=\"icon\" "
	    "href=\"data:,\"><link rel=\"stylesheet\" href=\"/app.css\"></head><body>"
	    "<main id=\"main\"><div class=\"signin\"><h1>Sign-in failed</h1>"
	    "<p class=\"error\" role=\"alert\">%s</p><p><a href=\"/\">Back to sign-in"
	    "</a></p></div></main></body></html>\n";
	char msg[768], esc[4096], *text = NULL;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int n;

	snprintf(msg, sizeof(msg), "sign-in with OpenID Connect: %s", why);
	req_audit_denial(q, "auth.failed", msg);
	req_error(q, status, code, NULL, "%s", msg);
	if (wants_json(q))
		return req_send_json(q, clear);
	html_escape(why, esc, sizeof(esc));
	if ((n = asprintf(&text, page, esc)) < 0)
		return MHD_NO;
	resp = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/html; charset=utf-8");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	security_headers(resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, clear);
	ret = MHD_queue_response(q->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* GET /api/v1/session/oidc: whether the sign-in page offers the issuer, and where. */
static enum MHD_Result
oidc_info(struct req *q)
{
	req_reply(q, 200, json_pack("{s:s, s:s}", "issuer", oidc_issuer(q->api->oidc),
	    "start", OIDC_PATH "/start"));
	return req_send_json(q, NULL);
}

/* GET /api/v1/session/oidc/start: off to the issuer with a fresh login. */
static enum MHD_Result
oidc_start(struct req *q)
{
	struct web *w = q->api->web;
	char pre[SECRET_B64 + 1], challenge[SECRET_B64 + 1];
	struct login l;
	char redirect[REDIRECT_MAX], cookie[200];
	unsigned char digest[32];
	enum MHD_Result ret;
	char *url = NULL;
	struct qerr e;

	qerr_clear(&e);
	if (!redirect_uri_for(q, redirect, sizeof(redirect)))
		return oidc_fail(q, 400, "invalid_input", "the request's Host header "
		    "cannot make a redirect URI: set [oidc] redirect_uri");
	random_text(pre);
	login_secrets(pre, &l);
	/* PKCE S256 (RFC 7636): the issuer sees the challenge now, the verifier later. */
	crypto_hash_sha256(digest, (const unsigned char *)l.verifier, strlen(l.verifier));
	sodium_bin2base64(challenge, sizeof(challenge), digest, sizeof(digest),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (oidc_authorize_url(q->api->oidc, redirect, l.state, l.nonce, challenge, &url,
	    &e) != 0) {
		ret = oidc_fail(q, 500, "internal", e.msg);
		goto out;
	}
	if (login_new(q->api->st, pre, redirect, &e) != 0) {
		ret = oidc_fail(q, 503, "unavailable", e.msg);
		goto out;
	}
	snprintf(cookie, sizeof(cookie), LOGIN_COOKIE "=%s; Path=" OIDC_PATH
	    "; HttpOnly; SameSite=Lax; Max-Age=%d%s", pre, LOGIN_TTL_S,
	    w->tls ? "; Secure" : "");
	ret = send_redirect(q, url, cookie, NULL);
out:
	free(url);
	sodium_memzero(cookie, sizeof(cookie));
	sodium_memzero(pre, sizeof(pre));
	login_wipe(&l);
	sodium_memzero(digest, sizeof(digest));
	return ret;
}

/* Printable ASCII of a query value from the issuer, bounded, for a message. */
static void
printable(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; in != NULL && *in != '\0' && n + 1 < outlen; in++)
		out[n++] = *in >= 0x20 && *in < 0x7f ? *in : '?';
	out[n] = '\0';
}

/* The checks of a callback before the code is redeemed; why set when one fails. */
static bool
callback_ok(struct req *q, const struct login *l, char *why, size_t whylen)
{
	const char *state = req_query(q, "state"), *code = req_query(q, "code");
	char err[129], desc[257];

	if (req_query(q, "error") != NULL) {
		printable(req_query(q, "error"), err, sizeof(err));
		printable(req_query(q, "error_description"), desc, sizeof(desc));
		snprintf(why, whylen, "the issuer refused the sign-in: %s%s%s", err,
		    desc[0] ? ": " : "", desc);
		return false;
	}
	if (state == NULL || strlen(state) != SECRET_B64 ||
	    sodium_memcmp(state, l->state, SECRET_B64) != 0) {
		snprintf(why, whylen, "the state does not match the sign-in this browser "
		    "started");
		return false;
	}
	if (code == NULL || code[0] == '\0' || strnlen(code, CODE_MAX + 1) > CODE_MAX) {
		snprintf(why, whylen, "the issuer sent no usable authorization code");
		return false;
	}
	return true;
}

/* GET /api/v1/session/oidc/callback?code&state: back from the issuer. */
static enum MHD_Result
oidc_callback(struct req *q)
{
	static const char clear[] = LOGIN_COOKIE "=; Path=" OIDC_PATH
	    "; HttpOnly; SameSite=Lax; Max-Age=0";
	struct web *w = q->api->web;
	char pre[SECRET_B64 + 1], id[SECRET_B64 + 1], csrf[SECRET_B64 + 1];
	char cookie[160], why[512];
	struct oidc_claims c, keep;
	struct login l;
	enum MHD_Result ret;
	struct qerr e;
	int r;

	memset(&l, 0, sizeof(l));
	memset(&c, 0, sizeof(c));
	memset(&keep, 0, sizeof(keep));
	memset(pre, 0, sizeof(pre));
	memset(id, 0, sizeof(id));
	memset(csrf, 0, sizeof(csrf));
	cookie[0] = '\0';
	qerr_clear(&e);
	if (named_cookie(q, LOGIN_COOKIE, pre) != 1 || !login_take(q->api->st, pre, &l)) {
		ret = oidc_fail(q, 400, "invalid_input", "no sign-in is under way in this "
		    "browser (it was used already, is older than 10 minutes, or cookies are "
		    "off): start again");
		goto out;
	}
	if (!callback_ok(q, &l, why, sizeof(why))) {
		ret = oidc_fail(q, 401, "unauthenticated", why);
		goto out;
	}
	if ((r = oidc_redeem(q->api->oidc, req_query(q, "code"), l.verifier,
	    l.redirect_uri, l.nonce, &c, &e)) != 0) {
		ret = oidc_fail(q, r == QERR_TRANSIENT ? 502 : r == QERR_UNAUTHENTICATED ?
		    401 : 500, r == QERR_UNAUTHENTICATED ? "unauthenticated" :
		    "unavailable", e.msg);
		goto out;
	}
	if ((r = session_claims(q, &c, &e)) != 0 || !req_authorize(q) ||
	    (r = oidc_claims_copy(&keep, &q->claims, &e)) != 0) {
		ret = oidc_fail(q, 500, "internal", "out of memory");
		goto out;
	}
	if (session_new(w, q->api->st, q->who.id, NULL, NULL, &keep, id, csrf, &e) != 0) {
		ret = oidc_fail(q, 503, "unavailable", e.msg);
		goto out;
	}
	snprintf(cookie, sizeof(cookie),
	    COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", id,
	    (long long)(w->life_ms / 1000), w->tls ? "; Secure" : "");
	audit_session(q, "session.created", NULL);
	ret = send_redirect(q, "/#/identities", cookie, clear);
out:
	oidc_claims_clear(&c);
	oidc_claims_clear(&keep);
	login_wipe(&l);
	sodium_memzero(pre, sizeof(pre));
	sodium_memzero(id, sizeof(id));
	sodium_memzero(csrf, sizeof(csrf));
	sodium_memzero(cookie, sizeof(cookie));
	return ret;
}

/* The console's OpenID Connect paths under OIDC_PATH; GET only. */
static enum MHD_Result
oidc_request(struct req *q)
{
	const char *rest = q->path + strlen(OIDC_PATH);

	if (!oidc_code_flow(q->api->oidc))
		req_error(q, 404, "not_found", NULL,
		    "sign-in with OpenID Connect is not configured ([oidc] client_id)");
	else if (strcmp(q->method, "GET") != 0)
		req_error(q, 405, "method_not_allowed", NULL,
		    "%s is not allowed on %s", q->method, q->path);
	else if (rest[0] == '\0')
		return oidc_info(q);
	else if (strcmp(rest, "/start") == 0)
		return oidc_start(q);
	else if (strcmp(rest, "/callback") == 0)
		return oidc_callback(q);
	else
		req_error(q, 404, "not_found", NULL, "no such path");
	return req_send_json(q, NULL);
}

bool
web_request(struct req *q, enum MHD_Result *ret)
{
	bool get = strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0;

	/* The probes and the scrape are the API's, not the console's files. */
	if (q->api->web == NULL || strcmp(q->path, "/healthz") == 0 ||
	    strcmp(q->path, "/readyz") == 0 || strcmp(q->path, "/metrics") == 0)
		return false;
	if (strcmp(q->path, "/api/v1/session") == 0) {
		if (q->too_large)
			req_error(q, 413, "too_large", "body",
			    "the body is larger than %zu bytes", q->api->cfg->max_body);
		else if (strcmp(q->method, "POST") == 0)
			return *ret = sign_in(q), true;
		else if (strcmp(q->method, "GET") == 0)
			return *ret = who(q), true;
		else if (strcmp(q->method, "DELETE") == 0)
			return *ret = sign_out(q), true;
		else
			req_error(q, 405, "method_not_allowed", NULL,
			    "%s is not allowed on %s", q->method, q->path);
		*ret = req_send_json(q, NULL);
		return true;
	}
	if (strncmp(q->path, OIDC_PATH, strlen(OIDC_PATH)) == 0 &&
	    (q->path[strlen(OIDC_PATH)] == '\0' || q->path[strlen(OIDC_PATH)] == '/'))
		return *ret = oidc_request(q), true;
	if (strncmp(q->path, "/api/", 5) == 0 || strcmp(q->path, "/api") == 0 ||
	    routes_graph_path(q->path) || routes_ssf_path(q->path))
		return false;
	if (!get) {
		req_error(q, 405, "method_not_allowed", NULL,
		    "the console's files are read with GET");
		*ret = req_send_json(q, NULL);
		return true;
	}
	*ret = send_file(q);
	return true;
}
