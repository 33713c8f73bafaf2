/*
 * quell as an SSF receiver over push: POST /ssf/receive/<name> takes a SET pushed by
 * the transmitter of [ssf_receiver "name"] (RFC 8935) when the pusher holds the
 * section's bearer token; the SET itself is checked and made an alert by
 * src/engine/ssf_receive.c. Every refusal is answered with RFC 8935's error and
 * audited as ssf.refused.
 */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "engine/ssf.h"
#include "internal.h"
#include "providers/kit.h"

/* The pusher's Authorization must be "Bearer <token_file's token>". */
static int
check_bearer(struct req *q, const struct system_config *rc, struct ssf_refusal *f)
{
	const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    "Authorization");
	struct kit_secret tok = { 0 };
	struct qerr e = { 0 };
	int r;

	if (config_system_get(rc, "token_file") == NULL)
		return ssf_refuse(f, 500, "access_denied", "receiver '%s' has no token_file",
		    rc->name);
	if (kit_file_read(rc, config_system_get(rc, "token_file"), KIT_FILE_SECRET |
	    KIT_FILE_ONE_LINE, 4096, &tok, &e) != 0)
		return ssf_refuse(f, 500, "access_denied", "%s", e.msg);
	r = h != NULL && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == tok.len &&
	    sodium_memcmp(h + 7, tok.buf, tok.len) == 0 ? 0 : -1;
	kit_secret_clear(&tok);
	if (r != 0)
		return ssf_refuse(f, 401, "authentication_failed", "%s", h == NULL ?
		    "no Authorization header" : "the bearer token is not the receiver's");
	return 0;
}

void
routes_ssf_receive(struct req *q, const char *name)
{
	const struct system_config *rc = ssf_receiver_find(q->api->cfg, name);
	struct ssf_refusal f = { .status = 0 };
	json_t *cl = NULL;
	bool taken = false;

	if (strcmp(q->method, "POST") != 0) {
		q->allow = "POST";
		req_error(q, 405, "method_not_allowed", NULL, "%s", "a SET is POSTed");
		return;
	}
	if (rc == NULL) {
		req_error(q, 404, "not_found", NULL, "no [ssf_receiver \"%.100s\"]", name);
		return;
	}
	if (check_bearer(q, rc, &f) == 0) {
		if (q->too_large || q->body == NULL || q->len == 0)
			ssf_refuse(&f, 400, "invalid_request", "%s", "the body must be one SET "
			    "(application/secevent+jwt) of at most the server's max_body");
		else
			taken = ssf_receive(q->api->eng, q->api->st, rc, q->body, &cl, &f) == 0;
	}
	ssf_receive_audit(q->api->eng, name, req_client(q), cl, taken ? NULL : &f);
	if (taken)
		req_reply(q, 202, NULL);
	else
		req_reply(q, f.status, json_pack("{s:s, s:s}", "err", f.err, "description",
		    f.why));
	json_decref(cl);
}
