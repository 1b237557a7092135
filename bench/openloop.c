// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * openloop: a tight open + close loop on one path, for bench/opensnoop.py.
 *
 *   openloop [-g CGROUP] [-C CPU] [-s openat|open] [-w WARMUP] PATH N
 *
 * Opens PATH read-only and closes it N times and prints one line on stdout:
 *
 *   iterations=N ns=TOTAL ns_per_op=X.X failed=F pid=P
 *
 * TOTAL is CLOCK_MONOTONIC around the N timed iterations only. failed counts opens that
 * returned -1 (the loop goes on: a failed open is traced all the same).
 *
 *   -g CGROUP  join this cgroup first (writes the pid to CGROUP/cgroup.procs), so that the loop
 *              is inside or outside a tracer's --cgroupmap. Nothing is opened after the move but
 *              PATH: a tracer filtering on that cgroup sees exactly the N (+ WARMUP) opens.
 *   -C CPU     pin the process to this CPU first.
 *   -s         openat (default: openat(AT_FDCWD, PATH, O_RDONLY), what glibc's open() calls)
 *              or open (the open(2) system call, x86_64 only).
 *   -w WARMUP  untimed iterations before the timed ones (default 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long parse_count(const char *text, const char *what)
{
	char *end;
	long long value;

	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno || end == text || *end || value < 0) {
		fprintf(stderr, "openloop: %s: '%s' is not a non-negative integer\n", what, text);
		exit(2);
	}
	return value;
}

static void join_cgroup(const char *dir)
{
	char path[4096], pid[32];
	int fd, len;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path)) {
		fprintf(stderr, "openloop: -g: path too long\n");
		exit(2);
	}
	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "openloop: open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (write(fd, pid, len) != len) {
		fprintf(stderr, "openloop: write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-g CGROUP] [-C CPU] [-s openat|open] [-w WARMUP] PATH N\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL, *path;
	long long n, warmup = 0, failed = 0, i, t0, t1;
	int opt, cpu = -1, use_open = 0;

	while ((opt = getopt(argc, argv, "g:C:s:w:")) != -1) {
		switch (opt) {
		case 'g':
			cgroup = optarg;
			break;
		case 'C':
			cpu = (int)parse_count(optarg, "-C");
			break;
		case 's':
			if (strcmp(optarg, "open") == 0)
				use_open = 1;
			else if (strcmp(optarg, "openat") == 0)
				use_open = 0;
			else
				usage(argv[0]);
			break;
		case 'w':
			warmup = parse_count(optarg, "-w");
			break;
		default:
			usage(argv[0]);
		}
	}
	if (argc - optind != 2)
		usage(argv[0]);
	path = argv[optind];
	n = parse_count(argv[optind + 1], "N");
#ifndef SYS_open
	if (use_open) {
		fprintf(stderr, "openloop: -s open: this architecture has no open(2)\n");
		return 2;
	}
#endif
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			fprintf(stderr, "openloop: -C %d: %s\n", cpu, strerror(errno));
			return 1;
		}
	}
	if (cgroup)
		join_cgroup(cgroup);

	t0 = 0;
	for (i = -warmup; i < n; i++) {
		int fd;

		if (i == 0)
			t0 = now_ns();
#ifdef SYS_open
		if (use_open)
			fd = (int)syscall(SYS_open, path, O_RDONLY);
		else
#endif
			fd = openat(AT_FDCWD, path, O_RDONLY);
		if (fd >= 0)
			close(fd);
		else if (i >= 0)
			failed++;
	}
	t1 = now_ns();
	if (n == 0)
		t0 = t1;

	printf("iterations=%lld ns=%lld ns_per_op=%.1f failed=%lld pid=%d\n", n, t1 - t0,
	       n ? (double)(t1 - t0) / (double)n : 0.0, failed, (int)getpid());
	return 0;
}
