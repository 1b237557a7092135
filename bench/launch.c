// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * launch: runs a command and reports its start instant and resource usage on a status fd,
 * for bench/startup.py.
 *
 *   launch STATUS_FD COMMAND [ARG...]
 *
 * Writes "<pid> <CLOCK_MONOTONIC ns just before fork>\n" to STATUS_FD as soon as the child
 * exists, then "<wait status> <ru_maxrss KiB> <user us> <sys us>\n" when it has ended.
 *
 * A small C process stands between the harness and the measured command because Linux carries
 * the RSS high-water mark of the address space an exec replaces into the new program's
 * ru_maxrss: a command forked (or vforked) straight from a Python interpreter would report at
 * least the interpreter's own peak RSS.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec ts;
	struct rusage ru;
	int fd, status;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: %s STATUS_FD COMMAND [ARG...]\n", argv[0]);
		return 2;
	}
	fd = atoi(argv[1]);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		perror("launch: status fd");
		return 2;
	}
	out = fdopen(fd, "w");
	if (!out) {
		perror("launch: fdopen");
		return 2;
	}
	/* Signals aimed at the harness's process group are for the measured command. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pid = fork();
	if (pid < 0) {
		perror("launch: fork");
		return 1;
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execvp(argv[2], argv + 2);
		fprintf(stderr, "launch: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	fprintf(out, "%d %lld\n", (int)pid, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	fflush(out);

	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("launch: wait4");
			return 1;
		}
	}
	fprintf(out, "%d %ld %lld %lld\n", status, ru.ru_maxrss,
		(long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
		(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	fclose(out);
	return 0;
}
