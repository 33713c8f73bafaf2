/* The answer-cutting tests' emulators, requests and providers (cuts.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cuts.h"

static size_t
sink(char *data, size_t size, size_t nmemb, void *arg)
{
	struct cuts_buf *b = arg;
	char *p = realloc(b->p, b->n + size * nmemb + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->n, data, size * nmemb);
	b->p = p;
	b->n += size * nmemb;
	b->p[b->n] = '\0';
	return size * nmemb;
}

struct cuts_buf
cuts_call(const char *base, const char *method, const char *path, const char *body,
    const char *ctype, const char *auth)
{
	struct curl_slist *h = NULL;
	struct cuts_buf b = { NULL, 0 };
	char url[512], type[128];
	CURL *c = curl_easy_init();
	CURLcode rc;

	assert_non_null(c);
	snprintf(url, sizeof(url), "%s%s", base, path);
	snprintf(type, sizeof(type), "Content-Type: %s", ctype != NULL ? ctype :
	    "application/json");
	h = curl_slist_append(h, type);
	if (auth != NULL)
		h = curl_slist_append(h, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if ((rc = curl_easy_perform(c)) != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (b.p == NULL)
		assert_non_null(b.p = calloc(1, 1));
	return b;
}

void
cuts_ctl(const char *base, const char *method, const char *path, const char *json)
{
	free(cuts_call(base, method, path, json, NULL, NULL).p);
}

pid_t
cuts_spawn(const char *script, const char *const *args, char *base, size_t len)
{
	const char *argv[16] = { "node", script, "--port", "0" };
	size_t n = 4;
	int fds[2], port = 0;
	pid_t pid;
	FILE *in;

	while (args != NULL && *args != NULL && n + 1 < sizeof(argv) / sizeof(argv[0]))
		argv[n++] = *args++;
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		/* A test that dies takes its emulator with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp("node", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	assert_non_null(in = fdopen(fds[0], "r"));
	if (fscanf(in, "listening on %d", &port) != 1)
		fail_msg("the emulator %s did not start", script);
	fclose(in);
	snprintf(base, len, "http://127.0.0.1:%d", port);
	return pid;
}

void
cuts_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

char *
cuts_file(const char *dir, const char *name, const char *text)
{
	char *path = NULL;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
	return path;
}

struct provider *
cuts_open(const char *kind, const char *const *kv, size_t n)
{
	struct config_kv lines[16];
	struct system_config sc = { .name = (char *)"cuts", .kind = (char *)kind,
		.file = "test.conf", .line = 1, .max_concurrency = 1, .kv = lines, .nkv = n };
	char keys[16][64];
	struct provider *p = NULL;
	struct qerr e = { 0 };
	size_t i;

	assert_true(n <= 16);
	for (i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');

		assert_non_null(eq);
		snprintf(keys[i], sizeof(keys[i]), "%.*s", (int)(eq - kv[i]), kv[i]);
		lines[i] = (struct config_kv){ .key = keys[i], .value = (char *)eq + 1,
			.line = (int)i + 2 };
	}
	if (provider_open(provider_lookup(kind), &sc, &p, &e) != 0)
		fail_msg("open %s: %s", kind, e.msg);
	return p;
}

size_t
cuts_stride(size_t def)
{
	const char *full = getenv("QUELL_CUTS_FULL");

	return full != NULL && strcmp(full, "1") == 0 ? 1 : def;
}
