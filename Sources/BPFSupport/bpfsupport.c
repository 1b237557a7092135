#define _GNU_SOURCE
#include "bpfsupport.h"

#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KEPT_LOG 8192

static int log_verbose;
static char kept[KEPT_LOG];
static size_t kept_len;

static int print_fn(enum libbpf_print_level level, const char *format, va_list args)
{
	char line[1024];
	int n;

	if (log_verbose)
		return vfprintf(stderr, format, args);
	if (level == LIBBPF_DEBUG)
		return 0;
	n = vsnprintf(line, sizeof(line), format, args);
	if (n <= 0)
		return 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (kept_len + n >= KEPT_LOG)
		kept_len = 0; /* keep the newest lines */
	memcpy(kept + kept_len, line, n);
	kept_len += n;
	kept[kept_len] = '\0';
	return 0;
}

void bpfsupport_set_log(int verbose)
{
	log_verbose = verbose;
	libbpf_set_print(print_fn);
}

const char *bpfsupport_take_log(void)
{
	static char out[KEPT_LOG];

	memcpy(out, kept, kept_len + 1 > KEPT_LOG ? KEPT_LOG : kept_len + 1);
	out[kept_len < KEPT_LOG ? kept_len : KEPT_LOG - 1] = '\0';
	kept_len = 0;
	kept[0] = '\0';
	return out;
}

static int read_file(const char *path, char *buf, int len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int bpfsupport_read_lockdown(char *buf, int len)
{
	int fds[2], n, status;
	pid_t child;

	if (len < 2)
		return -1;
	n = read_file("/sys/kernel/security/lockdown", buf, len);
	if (n >= 0)
		return n;
	if (pipe2(fds, O_CLOEXEC))
		return -1;
	child = fork();
	if (child == 0) {
		/* Only async-signal-safe calls here: the parent may have other threads. */
		if (!unshare(CLONE_NEWNS) && !mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) &&
		    !mount("securityfs", "/sys/kernel/security", "securityfs", 0, NULL)) {
			int fd = open("/sys/kernel/security/lockdown", O_RDONLY);
			char tmp[256];
			ssize_t got = fd < 0 ? -1 : read(fd, tmp, sizeof(tmp));

			if (got > 0)
				(void)!write(fds[1], tmp, got);
		}
		_exit(0);
	}
	close(fds[1]);
	n = child < 0 ? -1 : (int)read(fds[0], buf, len - 1);
	close(fds[0]);
	if (child > 0)
		waitpid(child, &status, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

void bpfsupport_trim_heap(void)
{
	malloc_trim(0);
}
