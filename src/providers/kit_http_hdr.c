/*
 * The headers every vendor uses to steer a client: Retry-After (both of RFC 9110's
 * forms, capped) and Link rel="next" (RFC 8288), which carries the next page and so,
 * with it, the bearer token: it must stay on the API's origin.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "core/backoff.h"
#include "core/clock.h"
#include "providers/kit.h"

#define BACKOFF_BASE_MS	1000
#define BACKOFF_CAP_MS	60000

static int64_t
capped(int64_t ms)
{
	if (ms < 0)
		return 0;
	return ms > KIT_RETRY_AFTER_CAP_MS ? KIT_RETRY_AFTER_CAP_MS : ms;
}

int
kit_retry_after_parse(const char *v, int64_t now_ms, int64_t *out_ms)
{
	char *end;
	double s;
	time_t t;

	if (v == NULL || *v == '\0')
		return -1;
	if (isdigit((unsigned char)v[0])) {
		errno = 0;
		s = strtod(v, &end);
		if (errno == 0 && *end == '\0' && isfinite(s)) {
			*out_ms = s * 1000 > (double)KIT_RETRY_AFTER_CAP_MS ?
			    KIT_RETRY_AFTER_CAP_MS : capped((int64_t)ceil(s * 1000));
			return 0;
		}
	}
	/* IMF-fixdate, RFC 850 or asctime: curl_getdate reads all three. A date needs a
	 * weekday name first; curl would take much else ("now", bare numbers). */
	if (!isalpha((unsigned char)v[0]) || (t = curl_getdate(v, NULL)) == -1)
		return -1;
	/* A year so far ahead that its ms overflow is past the cap; before 1970, past. */
	*out_ms = t > INT64_MAX / 1000 ? KIT_RETRY_AFTER_CAP_MS : t < 0 ? 0 :
	    capped((int64_t)t * 1000 - now_ms);
	return 0;
}

int
kit_retry_after(const struct http_response *resp)
{
	char buf[64];
	int64_t ms;

	if (http_header_get(resp, "Retry-After", buf, sizeof(buf)) == NULL ||
	    kit_retry_after_parse(buf, clock_real_ms(), &ms) != 0)
		return -1;
	return (int)ms;
}

int
kit_backoff_ms(int attempt)
{
	return (int)backoff_delay_ms(attempt < 1 ? 1 : attempt, BACKOFF_BASE_MS,
	    BACKOFF_CAP_MS, randombytes_random());
}

/* Whether one parameter ("rel=next", " rel = \"next last\"") names rel next. */
static bool
param_next(char *param)
{
	char *v, *tok, *save = NULL;

	param += strspn(param, " \t");
	if (strncasecmp(param, "rel", 3) != 0)
		return false;
	v = param + 3 + strspn(param + 3, " \t");
	if (*v++ != '=')
		return false;
	for (tok = strtok_r(v, " \t\"", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\"", &save))
		if (strcasecmp(tok, "next") == 0)
			return true;
	return false;
}

/* Whether the params of one link-value (after its '>', up to stop) hold rel next. */
static bool
rel_next(const char *p, const char *stop)
{
	char buf[512], *param, *save = NULL;
	size_t n = (size_t)(stop - p);

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	for (param = strtok_r(buf, ";", &save); param != NULL;
	    param = strtok_r(NULL, ";", &save))
		if (param_next(param))
			return true;
	return false;
}

/* The rel="next" target in one Link line [h, end): *lt, *gt bracket it; 1 found. */
static int
line_next(const char *h, const char *end, const char **lt, const char **gt)
{
	const char *stop, *q;

	for (h += 5; h < end && (*lt = memchr(h, '<', (size_t)(end - h))) != NULL;
	    h = stop + 1) {
		if ((*gt = memchr(*lt, '>', (size_t)(end - *lt))) == NULL)
			return -1;
		/* A comma inside a quoted parameter does not end the link-value. */
		for (stop = *gt + 1, q = NULL; stop < end && (*stop != ',' || q != NULL);
		    stop++)
			if (*stop == '"')
				q = q == NULL ? stop : NULL;
		if (rel_next(*gt + 1, stop))
			return 1;
		if (stop >= end)
			break;
	}
	return 0;
}

int
kit_link_next(const struct http_response *resp, const char *origin, char **next)
{
	const char *h, *end, *lt, *gt;
	int r;

	*next = NULL;
	for (h = resp->headers; h != NULL && *h != '\0'; h = end + (*end != '\0')) {
		end = h + strcspn(h, "\n");
		if (strncasecmp(h, "Link:", 5) != 0)
			continue;
		if ((r = line_next(h, end, &lt, &gt)) < 0)
			return -1;
		if (r == 0)
			continue;
		if ((*next = strndup(lt + 1, (size_t)(gt - lt - 1))) == NULL)
			return QERR_NOMEM;
		if (!kit_url_under(*next, origin)) {
			free(*next);
			*next = NULL;
			return -1;
		}
		return 0;
	}
	return 0;
}
