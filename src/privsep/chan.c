/* Framed messages over a channel's socket: whole writes, whole reads, checked. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "privsep/internal.h"

int
privsep_send(int fd, struct privsep_buf *b, struct qerr *e)
{
	size_t off = 0;
	ssize_t n;

	while (off < b->len) {
		n = send(fd, b->p + off, b->len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			b->len = 0;
			return qerr_set(e, QERR_IO, NULL, "privsep channel: %s",
			    n < 0 ? strerror(errno) : "closed");
		}
		off += (size_t)n;
	}
	b->len = 0;
	return 0;
}

static int
read_full(int fd, unsigned char *p, size_t len, struct qerr *e)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = read(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return qerr_set(e, QERR_IO, NULL, "privsep channel: %s",
			    n < 0 ? strerror(errno) : off == 0 ? "closed by the peer" :
			    "closed in the middle of a message");
		off += (size_t)n;
	}
	return 0;
}

int
privsep_recv(int fd, struct privsep_buf *in, struct privsep_msg *m, struct qerr *e)
{
	unsigned char hdr[PRIVSEP_HDR_LEN];
	size_t len;
	int r;

	if ((r = read_full(fd, hdr, sizeof(hdr), e)) != 0 ||
	    (r = privsep_header(hdr, &len, e)) != 0)
		return r;
	in->len = 0;
	if (!privsep_buf_reserve(in, PRIVSEP_HDR_LEN + len))
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	memcpy(in->p, hdr, sizeof(hdr));
	if ((r = read_full(fd, in->p + PRIVSEP_HDR_LEN, len, e)) != 0)
		return r == QERR_IO ? qerr_set(e, QERR_IO, NULL, "privsep channel: closed "
		    "in the middle of a message") : r;
	in->len = PRIVSEP_HDR_LEN + len;
	return privsep_decode(in->p, in->len, m, e);
}
