//go:build linux && cgo

// The move of runtime/cgprime (rkt into the cgroup it is in, which moves nothing), started by
// a constructor as rkt's process starts, before the Go runtime and rkt's packages are
// initialised (about 3 ms of a start of rkt), for the commands that start a container.

#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CGROUP2_SUPER_MAGIC 0x63677270

/* How many of rkt's first words (not flags) are looked at for the command. */
#define COMMAND_WORDS 4

/* The pipe whose write end the thread closes once the move is over. */
static int done_r = -1, done_w = -1;

/* earlyprime_starts_container says whether rkt's arguments name run, run-prepared, app add or
 * app sandbox among their first words. The values of global flags given apart (--dir /x run)
 * are words too, so an image named like a command (rkt fetch run) is taken for one: the move
 * is then made for nothing, which costs that process nothing it waits for. */
int earlyprime_starts_container(int argc, char **argv)
{
	const char *words[COMMAND_WORDS];
	int n = 0;
	for (int i = 1; i < argc && n < COMMAND_WORDS; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (argv[i][0] != '-')
			words[n++] = argv[i];
	}
	for (int i = 0; i < n; i++) {
		if (strcmp(words[i], "run") == 0 || strcmp(words[i], "run-prepared") == 0)
			return 1;
		if (strcmp(words[i], "app") == 0 && i + 1 < n &&
		    (strcmp(words[i + 1], "add") == 0 || strcmp(words[i + 1], "sandbox") == 0))
			return 1;
	}
	return 0;
}

/* earlyprime_procs_path puts into out the cgroup.procs file the move writes to, from the
 * text of /proc/self/cgroup: the process's cgroup in the v1 pids hierarchy where it has one,
 * else its cgroup in the unified hierarchy on a host that has only that one (unified). It
 * returns 0 when there is none. cgroup is changed. */
int earlyprime_procs_path(char *cgroup, int unified, char *out, size_t size)
{
	const char *pids = NULL, *v2 = NULL;
	for (char *save = NULL, *line = strtok_r(cgroup, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/')
			continue;
		*c1 = *c2 = '\0';
		if (strcmp(line, "0") == 0 && c1[1] == '\0')
			v2 = c2 + 1;
		else if (strcmp(c1 + 1, "pids") == 0)
			pids = c2 + 1;
	}
	const char *base = "/sys/fs/cgroup/pids", *p = pids;
	if (!p && unified && v2) {
		base = "/sys/fs/cgroup";
		p = v2;
	}
	if (!p)
		return 0;
	int n = snprintf(out, size, "%s%s/cgroup.procs", base, strcmp(p, "/") == 0 ? "" : p);
	return n > 0 && (size_t)n < size;
}

/* earlyprime_listed says whether the cgroup.procs text procs has the line pid. */
int earlyprime_listed(const char *procs, const char *pid)
{
	size_t n = strlen(pid);
	for (const char *line = procs; *line; line++) {
		if (strncmp(line, pid, n) == 0 && (line[n] == '\n' || line[n] == '\0'))
			return 1;
		line = strchr(line, '\n');
		if (!line)
			break;
	}
	return 0;
}

/* read_file reads path into buf (at most size-1 bytes, NUL-terminated); 0 when it cannot. */
static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t len = 0;
	ssize_t r;
	while (len < size - 1 && (r = read(fd, buf + len, size - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = '\0';
	return 1;
}

/* prime moves the process into the cgroup it is in: only into a cgroup that lists it
 * already (under a cgroup namespace with the host's hierarchy mounted, the path would name
 * another cgroup, and the write would be a real move). A failure only leaves the wait where
 * it was. */
static void *prime(void *arg)
{
	(void)arg;
	static char cgroup[8192], procs[1 << 16];
	char path[8300], pid[16];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	struct statfs st;
	int unified = statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
	if (read_file("/proc/self/cgroup", cgroup, sizeof cgroup) &&
	    earlyprime_procs_path(cgroup, unified, path, sizeof path) &&
	    read_file(path, procs, sizeof procs) && earlyprime_listed(procs, pid)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, pid, strlen(pid)) < 0) {
				/* Nothing moved. */
			}
			close(fd);
		}
	}
	close(done_w);
	return NULL;
}

__attribute__((constructor)) static void earlyprime_start(int argc, char **argv, char **envp)
{
	(void)envp;
	if (!earlyprime_starts_container(argc, argv))
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	done_w = p[1];
	/* The thread takes no signals: the Go runtime's handlers are not there yet. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	pthread_t t;
	if (pthread_create(&t, &a, prime, NULL) == 0) {
		done_r = p[0];
	} else {
		close(p[0]);
		close(p[1]);
	}
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int earlyprime_done_fd(void)
{
	return done_r;
}
