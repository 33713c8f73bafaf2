/*
 * The URL checks the providers make of their configuration and of the links a vendor
 * sends: strict enough that nothing after the host is silently ignored, and that a
 * bearer token never follows a link to another origin.
 */
#include <string.h>

#include "providers/kit.h"

#define HOST_CHARS	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"

/* Which of the space-separated schemes url starts with ("name://"); -1 none. */
static int
scheme_of(const char *url, const char *schemes, size_t *index, const char **rest)
{
	const char *s = schemes;
	size_t n, i = 0;

	while (*s != '\0') {
		n = strcspn(s, " ");
		if (n > 0 && strncmp(url, s, n) == 0 && strncmp(url + n, "://", 3) == 0) {
			*index = i;
			*rest = url + n + 3;
			return 0;
		}
		s += n + (s[n] == ' ');
		i++;
	}
	return -1;
}

/* The end of host[:port] at h, or NULL. */
static const char *
host_end(const char *h)
{
	size_t n;
	long port = 0;

	if (*h == '[') {
		n = strspn(h + 1, "0123456789abcdefABCDEF:.");
		if (n == 0 || h[1 + n] != ']')
			return NULL;
		h += n + 2;
	} else {
		if ((n = strspn(h, HOST_CHARS)) == 0)
			return NULL;
		h += n;
	}
	if (*h != ':')
		return h;
	if ((n = strspn(h + 1, "0123456789")) == 0 || n > 5)
		return NULL;
	for (const char *d = h + 1; d < h + 1 + n; d++)
		port = port * 10 + (*d - '0');
	return port >= 1 && port <= 65535 ? h + 1 + n : NULL;
}

int
kit_url_parse(const char *url, const char *schemes, struct kit_url *out)
{
	const char *h, *end;

	if (url == NULL || scheme_of(url, schemes, &out->scheme, &h) != 0 ||
	    (end = host_end(h)) == NULL)
		return -1;
	if (*end != '\0' && *end != '/')
		return -1;
	if (strpbrk(end, "?#%@ \t\r\n") != NULL)
		return -1;
	out->origin_len = (size_t)(end - url);
	out->path = end;
	return 0;
}

bool
kit_url_no_path(const char *url)
{
	const char *h = strstr(url, "://"), *end;

	if (h == NULL || (end = host_end(h + 3)) == NULL)
		return false;
	return *end == '\0' || strcmp(end, "/") == 0;
}

bool
kit_url_under(const char *url, const char *origin)
{
	size_t n = strlen(origin);

	return strncmp(url, origin, n) == 0 && url[n] == '/' &&
	    strpbrk(url, " \t\r\n") == NULL;
}
