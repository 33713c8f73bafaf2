/* The harnesses' HTTP server (fake_http.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "fake_http.h"
#include "fuzz.h"

#define TOKEN_ANSWER \
    "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"fuzz-token\"}"

static struct MHD_Daemon *daemon_;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned ans_status = 200;
static char *ans_headers, *ans_body, *ans_token_path;
static size_t ans_len;
static bool ans_used;	/* the answer was given: later requests get a 404 */

/* Each "Name: value" line of the harness's headers that MHD takes. */
static void
add_headers(struct MHD_Response *resp, const char *h)
{
	char *copy, *line, *save = NULL, *colon;

	if (h == NULL || (copy = strdup(h)) == NULL)
		return;
	for (line = strtok_r(copy, "\r\n", &save); line != NULL;
	    line = strtok_r(NULL, "\r\n", &save))
		if ((colon = strchr(line, ':')) != NULL) {
			*colon++ = '\0';
			MHD_add_response_header(resp, line, colon + strspn(colon, " "));
		}
	free(copy);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_len, void **state)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	bool token;

	(void)cls, (void)method, (void)version, (void)upload;
	/* The request's body is read (and dropped) before the answer. */
	if (*state == NULL) {
		*state = conn;
		return MHD_YES;
	}
	if (*upload_len != 0) {
		*upload_len = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&mu);
	token = ans_token_path != NULL &&
	    strncmp(url, ans_token_path, strlen(ans_token_path)) == 0;
	if (token)
		resp = MHD_create_response_from_buffer(strlen(TOKEN_ANSWER),
		    (void *)TOKEN_ANSWER, MHD_RESPMEM_PERSISTENT);
	else if (ans_used)
		resp = MHD_create_response_from_buffer(2, (void *)"{}",
		    MHD_RESPMEM_PERSISTENT);
	else {
		resp = MHD_create_response_from_buffer(ans_len, ans_body,
		    MHD_RESPMEM_MUST_COPY);
		add_headers(resp, ans_headers);
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, token ? 200 : ans_used ? 404 : ans_status, resp);
	ans_used = ans_used || !token;
	pthread_mutex_unlock(&mu);
	MHD_destroy_response(resp);
	return ret;
}

static void
stop(void)
{
	MHD_stop_daemon(daemon_);
	free(ans_headers);
	free(ans_body);
	free(ans_token_path);
}

unsigned
fake_http_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const union MHD_DaemonInfo *info;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (daemon_ == NULL) {
		daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
		    MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
		    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
		fuzz_check(daemon_ != NULL, "the fake HTTP server starts");
		atexit(stop);
	}
	info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	return info->port;
}

void
fake_http_answer(unsigned status, const char *headers, const char *body, size_t len,
    const char *token_path)
{
	pthread_mutex_lock(&mu);
	free(ans_headers);
	free(ans_body);
	free(ans_token_path);
	ans_status = status;
	ans_headers = headers ? strdup(headers) : NULL;
	ans_body = malloc(len + 1);
	if (ans_body != NULL)
		memcpy(ans_body, body, len);
	ans_len = ans_body != NULL ? len : 0;
	ans_token_path = token_path ? strdup(token_path) : NULL;
	ans_used = false;
	pthread_mutex_unlock(&mu);
}
