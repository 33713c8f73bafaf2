/*
 * The one reader of the files a system section names: passwords, API tokens, client
 * secrets, private keys and certificates. A secret is refused when others may read
 * it, and every buffer that held one is zeroed before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "providers/kit.h"

void
kit_free_zero(void *p, size_t n)
{
	if (p == NULL)
		return;
	sodium_memzero(p, n);
	free(p);
}

void
kit_free_str(char *s)
{
	if (s != NULL)
		kit_free_zero(s, strlen(s));
}

void
kit_secret_clear(struct kit_secret *s)
{
	if (s == NULL)
		return;
	/* One byte more than len: the terminator, and what trailing newlines left. */
	kit_free_zero(s->buf, s->buf != NULL ? s->len + 1 : 0);
	s->buf = NULL;
	s->len = 0;
}

/* Reads up to max + 1 bytes (one more tells "too long") into buf. */
static int
read_all(int fd, char *buf, size_t max, size_t *len)
{
	ssize_t n;

	*len = 0;
	while (*len <= max && (n = read(fd, buf + *len, max + 1 - *len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		*len += (size_t)n;
	}
	return 0;
}

static int
check_mode(const struct system_config *cfg, const struct config_kv *kv, int fd,
    unsigned flags, struct qerr *e)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		return config_error(e, cfg, kv->line, kv->key, "%s %s: not a regular file",
		    kv->key, kv->value);
	if ((flags & KIT_FILE_SECRET) && (st.st_mode & (S_IROTH | S_IWOTH)))
		return config_error(e, cfg, kv->line, kv->key,
		    "%s %s: readable by everyone (mode %03o): chmod o-rw it", kv->key,
		    kv->value, (unsigned)(st.st_mode & 0777));
	return 0;
}

/* Drops trailing newlines; says what is wrong with the rest, or NULL. */
static const char *
check_text(char *buf, size_t *len, size_t max, unsigned flags)
{
	if (*len > max)
		return "too long";
	while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
		(*len)--;
	buf[*len] = '\0';
	if (*len == 0)
		return "empty";
	if (memchr(buf, '\0', *len) != NULL)
		return "not text";
	if ((flags & KIT_FILE_ONE_LINE) && strpbrk(buf, "\r\n") != NULL)
		return "more than one line";
	return NULL;
}

int
kit_file_read(const struct system_config *cfg, const struct config_kv *kv,
    unsigned flags, size_t max, struct kit_secret *out, struct qerr *e)
{
	const char *why;
	char *buf = NULL;
	size_t len = 0;
	int fd, r = QERR_CONFIG;

	out->buf = NULL;
	out->len = 0;
	if ((fd = open(kv->value, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(e, cfg, kv->line, kv->key, "%s %s: %s", kv->key, kv->value,
		    strerror(errno));
	if ((r = check_mode(cfg, kv, fd, flags, e)) != 0)
		goto out;
	if ((buf = malloc(max + 2)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (read_all(fd, buf, max, &len) != 0) {
		r = config_error(e, cfg, kv->line, kv->key, "%s %s: %s", kv->key, kv->value,
		    strerror(errno));
		goto out;
	}
	if ((why = check_text(buf, &len, max, flags)) != NULL) {
		r = config_error(e, cfg, kv->line, kv->key, "%s %s: %s: it must hold %s of 1 "
		    "to %zu bytes", kv->key, kv->value, why, (flags & KIT_FILE_ONE_LINE) ?
		    "one line" : "text", max);
		goto out;
	}
	out->buf = buf;
	out->len = len;
	buf = NULL;
	r = 0;
out:
	kit_free_zero(buf, max + 2);
	close(fd);
	return r;
}
