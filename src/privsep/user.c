/*
 * Dropping root: quelld started as root reads its configuration and secrets and binds
 * its port, then both of its processes become [server] user for good. Whether root
 * can be taken back is checked, not assumed: a kernel or a capability left over that
 * allowed it would undo the point of the split.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "privsep/internal.h"

int
privsep_user_resolve(const struct config *cfg, struct privsep_user *u, struct qerr *e)
{
	const struct passwd *pw;

	memset(u, 0, sizeof(*u));
	if (cfg->user == NULL)
		return 0;
	if (strlen(cfg->user) >= sizeof(u->name))
		return qerr_set(e, QERR_CONFIG, "user", "%s:%d: [server] user: a name of at "
		    "most %zu characters", cfg->file, cfg->user_line, sizeof(u->name) - 1);
	if ((pw = getpwnam(cfg->user)) == NULL)
		return qerr_set(e, QERR_CONFIG, "user", "%s:%d: [server] user: no user '%s' "
		    "on this system", cfg->file, cfg->user_line, cfg->user);
	if (pw->pw_uid == 0 || pw->pw_gid == 0)
		return qerr_set(e, QERR_CONFIG, "user", "%s:%d: [server] user: '%s' has "
		    "root's %s: name an unprivileged user, such as quell", cfg->file,
		    cfg->user_line, cfg->user, pw->pw_uid == 0 ? "uid 0" : "group 0");
	u->drop = true;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", cfg->user);
	return 0;
}

/* Whatever fs.suid_dumpable says, nothing else running as the user may ptrace or
 * read the memory of a process that read root's secrets. LeakSanitizer's tracer is
 * such a thing: a sanitizer build leaves it possible. */
#ifdef SANITIZED
static const int dumpable = 1;
#else
static const int dumpable = 0;
#endif

/* Whether every id is u's and no supplementary group is left. */
static bool
became(const struct privsep_user *u)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	return getresuid(&ru, &eu, &su) == 0 && getresgid(&rg, &eg, &sg) == 0 &&
	    ru == u->uid && eu == u->uid && su == u->uid && rg == u->gid &&
	    eg == u->gid && sg == u->gid && getgroups(0, NULL) == 0;
}

/* Every way back the kernel must refuse now. */
static bool
regained(void)
{
	return setresuid((uid_t)-1, 0, (uid_t)-1) == 0 || setresgid((gid_t)-1, 0,
	    (gid_t)-1) == 0 || setgroups(0, NULL) == 0 || geteuid() == 0;
}

int
privsep_become(const struct privsep_user *u, const char *who, struct qerr *e)
{
	if (!u->drop)
		return 0;
	if (geteuid() != 0) {
		if (geteuid() == u->uid && getegid() == u->gid)
			return 0;
		return qerr_set(e, QERR_CONFIG, "user", "%s: [server] user: runs as uid %ld, "
		    "not root, so it cannot become user '%s'", who, (long)geteuid(), u->name);
	}
	if (setgroups(0, NULL) != 0 || setresgid(u->gid, u->gid, u->gid) != 0 ||
	    setresuid(u->uid, u->uid, u->uid) != 0)
		return qerr_set(e, QERR_INTERNAL, "user", "%s: cannot become user '%s': %s",
		    who, u->name, strerror(errno));
	if (!became(u) || regained())
		return qerr_set(e, QERR_INTERNAL, "user", "%s: root's ids could be taken "
		    "back after becoming user '%s'", who, u->name);
	if (prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0) != 0)
		return qerr_set(e, QERR_INTERNAL, "user", "%s: dumpable: %s", who,
		    strerror(errno));
	return 0;
}
