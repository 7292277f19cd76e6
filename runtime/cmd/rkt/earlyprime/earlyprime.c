//go:build linux && cgo

// The move of runtime/cgprime, started by a constructor as rkt's process starts: before the Go
// runtime and rkt's packages are initialised (about 3 ms of a start of rkt), for the commands
// that start a container.

#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CGROUP2_SUPER_MAGIC 0x63677270

/* The pipe whose write end the thread closes once the move is over. */
static int done_r = -1, done_w = -1;

/* earlyprime_starts_container says whether rkt's arguments name run, run-prepared, app add or
 * app sandbox. Global flags before the command count only as --flag=value. */
int earlyprime_starts_container(int argc, char **argv)
{
	const char *words[2];
	int n = 0;
	for (int i = 1; i < argc && n < 2; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (argv[i][0] == '-')
			continue;
		words[n++] = argv[i];
	}
	if (n == 0)
		return 0;
	if (strcmp(words[0], "run") == 0 || strcmp(words[0], "run-prepared") == 0)
		return 1;
	return n == 2 && strcmp(words[0], "app") == 0 &&
	       (strcmp(words[1], "add") == 0 || strcmp(words[1], "sandbox") == 0);
}

/* prime_path puts into out the cgroup.procs file the move writes to: the process's v1 pids
 * cgroup, else its unified one on a host with only that hierarchy. It returns 0 when there is
 * none. cgprime's dir says the same in Go. */
static int prime_path(char *out, size_t size)
{
	char buf[8192], pids[4096] = "", v2[4096] = "";
	int have_pids = 0, have_v2 = 0;
	int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t len = 0;
	ssize_t r;
	while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = '\0';
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/' || strlen(c2 + 1) >= sizeof pids)
			continue;
		*c1 = *c2 = '\0';
		if (strcmp(line, "0") == 0 && c1[1] == '\0') {
			strcpy(v2, c2 + 1);
			have_v2 = 1;
		} else if (strcmp(c1 + 1, "pids") == 0) {
			strcpy(pids, c2 + 1);
			have_pids = 1;
		}
	}
	int n = -1;
	if (have_pids) {
		n = snprintf(out, size, "/sys/fs/cgroup/pids%s/cgroup.procs", pids);
	} else if (have_v2) {
		struct statfs st;
		if (statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
			n = snprintf(out, size, "/sys/fs/cgroup%s/cgroup.procs", v2);
	}
	return n > 0 && (size_t)n < size;
}

/* listed says whether the cgroup.procs file at path has the line pid. */
static int listed(const char *path, const char *pid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[4096], line[16];
	size_t n = 0;
	int found = 0;
	ssize_t r;
	while (!found && (r = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < r && !found; i++) {
			if (buf[i] != '\n') {
				if (n < sizeof line - 1)
					line[n++] = buf[i];
				continue;
			}
			line[n] = '\0';
			found = strcmp(line, pid) == 0;
			n = 0;
		}
	}
	close(fd);
	return found;
}

/* prime moves the process into the cgroup it is in, as cgprime's prime does: only into a
 * cgroup that lists it already (under a cgroup namespace with the host's hierarchy mounted,
 * the path would name another cgroup, and the write would be a real move). */
static void *prime(void *arg)
{
	(void)arg;
	char path[4200], pid[16];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (prime_path(path, sizeof path) && listed(path, pid)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, pid, strlen(pid)) < 0) {
				/* Nothing moved: the wait stays where it was. */
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
