/*
 * What each process may still do once it runs: the front's files are limited by
 * Landlock to its store, its configuration, its console and what libraries read
 * (never a secret file), and both processes take no_new_privs and a seccomp
 * allow-list of the system calls they make; the executor's has no listening, no
 * file changes and no reaping. Applied before either starts a thread, as both bind
 * only the calling thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"
#include "privsep/internal.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE	(1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV	(1ULL << 15)
#endif

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_FILE (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
	LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* What libraries read on the front's behalf: CA bundles, the resolver's files, time
 * zones, shared objects loaded late (NSS), the CPU count. Nothing of quell's own. */
static const char *const system_ro[] = {
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/usr/share/ca-certificates",
	"/usr/lib/ssl", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
	"/etc/host.conf", "/etc/gai.conf", "/etc/services", "/etc/protocols",
	"/etc/localtime", "/usr/share/zoneinfo", "/etc/ld.so.cache", "/usr/lib", "/lib",
	"/lib64", "/usr/lib64", "/proc/self", "/sys/devices/system/cpu", "/dev/urandom",
	"/dev/random", "/dev/null",
};

/* The file rights the kernel's Landlock ABI knows, from ABI 1 on. */
static uint64_t
fs_handled(int abi)
{
	uint64_t all = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;

	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		all |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		all |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return all;
}

/* A rule for path; a path that does not exist is no error (an optional file). */
static int
add_rule(int ruleset, const char *path, uint64_t access, uint64_t handled,
    struct qerr *e)
{
	struct landlock_path_beneath_attr pb = { 0 };
	struct stat sb;
	int fd, r = 0;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) < 0)
		return 0;
	if (fstat(fd, &sb) == 0 && !S_ISDIR(sb.st_mode))
		access &= FS_FILE;
	pb.allowed_access = access & handled;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0)
		r = qerr_set(e, QERR_INTERNAL, NULL, "landlock: rule for %s: %s", path,
		    strerror(errno));
	close(fd);
	return r;
}

static int
landlock_front(const struct privsep_paths *paths, struct qerr *e)
{
	struct landlock_ruleset_attr attr = { 0 };
	int abi, fd, r = 0;
	size_t i;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		log_msg(LOG_LVL_WARN, "sandbox: Landlock is not available (%s): the front "
		    "process can open any file its user can", strerror(errno));
		return 0;
	}
	attr.handled_access_fs = fs_handled(abi);
	if ((fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0)) < 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "landlock: %s", strerror(errno));
	for (i = 0; i < sizeof(system_ro) / sizeof(system_ro[0]) && r == 0; i++)
		r = add_rule(fd, system_ro[i], FS_READ, attr.handled_access_fs, e);
	for (i = 0; i < paths->nro && r == 0; i++)
		r = add_rule(fd, paths->ro[i], FS_READ, attr.handled_access_fs, e);
	for (i = 0; i < paths->nrw && r == 0; i++)
		r = add_rule(fd, paths->rw[i], attr.handled_access_fs &
		    ~(uint64_t)LANDLOCK_ACCESS_FS_EXECUTE, attr.handled_access_fs, e);
	if (r == 0 && syscall(SYS_landlock_restrict_self, fd, 0) != 0)
		r = qerr_set(e, QERR_INTERNAL, NULL, "landlock: %s", strerror(errno));
	close(fd);
	return r;
}

/* What both processes call: memory, threads, time, signals, reading and writing
 * their descriptors, talking over sockets they connect. */
static const char *const calls_common[] = {
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
	"lseek", "close", "close_range", "openat", "open", "stat", "fstat", "lstat",
	"newfstatat", "statx", "access", "faccessat", "faccessat2", "readlink",
	"readlinkat", "getcwd", "getdents64", "fcntl", "ioctl", "mmap", "munmap",
	"mprotect", "mremap", "madvise", "brk", "membarrier", "futex", "futex_waitv",
	"set_robust_list", "get_robust_list", "rseq", "clone", "clone3", "exit",
	"exit_group", "set_tid_address", "sched_yield", "sched_getaffinity",
	"prlimit64", "getrlimit", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	"rt_sigsuspend", "rt_sigtimedwait", "sigaltstack", "tgkill", "tkill", "getpid",
	"getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
	"getresuid", "getresgid", "clock_gettime", "clock_getres", "clock_nanosleep",
	"nanosleep", "gettimeofday", "time", "socket", "socketpair", "connect", "bind",
	"getsockname", "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom",
	"sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "poll", "ppoll",
	"select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "pipe",
	"pipe2", "dup", "dup2", "dup3", "getrandom", "uname", "sysinfo",
	"restart_syscall", "prctl", "fadvise64", "timerfd_create", "timerfd_settime",
	"timerfd_gettime", "sched_getparam", "sched_getscheduler", "getpriority",
};

/* The front's own: it listens, writes its store, reaps the executor. */
static const char *const calls_front[] = {
	"listen", "accept", "accept4", "fsync", "fdatasync", "ftruncate", "fallocate",
	"unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
	"fchmod", "fchown", "umask", "flock", "wait4", "waitid",
};

/* The executor's, while it still has to drop root (privsep_become); once it has,
 * the kernel refuses them whatever they ask. */
static const char *const calls_setid[] = { "setgroups", "setresuid", "setresgid" };

#ifdef SANITIZED
static const char *const calls_sanitizer[] = {
	"ptrace", "process_vm_readv", "getdents", "execve", "fork", "vfork", "wait4",
	"waitid",
};
#endif

static int
allow(scmp_filter_ctx ctx, const char *const *names, size_t n, struct qerr *e)
{
	size_t i;
	int nr;

	for (i = 0; i < n; i++) {
		/* A name this architecture does not have is skipped. */
		if ((nr = seccomp_syscall_resolve_name(names[i])) == __NR_SCMP_ERROR)
			continue;
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0)
			return qerr_set(e, QERR_INTERNAL, NULL, "seccomp: cannot allow %s",
			    names[i]);
	}
	return 0;
}

/* no_new_privs, then the allow-list; anything else fails with EPERM rather than
 * killing the process, so a library's rare call shows as an error, not a crash. */
static int
filter(const char *who, bool front, bool setid, struct qerr *e)
{
	scmp_filter_ctx ctx;
	int r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "%s: no_new_privs: %s", who,
		    strerror(errno));
	if ((ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "seccomp: out of memory");
	if ((r = allow(ctx, calls_common, sizeof(calls_common) / sizeof(calls_common[0]),
	    e)) == 0 && front)
		r = allow(ctx, calls_front, sizeof(calls_front) / sizeof(calls_front[0]), e);
	if (r == 0 && setid)
		r = allow(ctx, calls_setid, sizeof(calls_setid) / sizeof(calls_setid[0]), e);
#ifdef SANITIZED
	if (r == 0)
		r = allow(ctx, calls_sanitizer, sizeof(calls_sanitizer) /
		    sizeof(calls_sanitizer[0]), e);
#endif
	if (r == 0 && (r = seccomp_load(ctx)) != 0) {
		if (r == -EINVAL || r == -ENOSYS) {
			log_msg(LOG_LVL_WARN, "sandbox: seccomp is not available: the %s "
			    "process may make any system call", who);
			r = 0;
		} else
			r = qerr_set(e, QERR_INTERNAL, NULL, "seccomp: %s", strerror(-r));
	}
	seccomp_release(ctx);
	return r;
}

/* no_new_privs comes first: without it (or CAP_SYS_ADMIN, which root has and the
 * quell user does not) the kernel refuses landlock_restrict_self with EPERM. */
int
privsep_sandbox_front(const struct privsep_paths *paths, struct qerr *e)
{
	int r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "front: no_new_privs: %s",
		    strerror(errno));
	if ((r = landlock_front(paths, e)) == 0)
		r = filter("front", true, false, e);
	return r;
}

int
privsep_sandbox_executor(bool setid, struct qerr *e)
{
	return filter("executor", false, setid, e);
}
