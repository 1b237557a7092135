/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * benchutil.h: the helpers the C programs of bench/ share (clocks, argument parsing, cgroup
 * join, CPU pinning). Header-only; define BENCH_PROG (the program's name for messages) before
 * including it.
 */
#ifndef BPFBOX_BENCHUTIL_H
#define BPFBOX_BENCHUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_PROG
#error "define BENCH_PROG before including benchutil.h"
#endif

static inline long long clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long long now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* A non-negative decimal integer, or exit 2 with a message naming WHAT. */
static inline long long parse_count(const char *text, const char *what)
{
	char *end;
	long long value;

	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno || end == text || *end || value < 0) {
		fprintf(stderr, BENCH_PROG ": %s: '%s' is not a non-negative integer\n", what, text);
		exit(2);
	}
	return value;
}

/* Moves the calling process into the cgroup v2 directory DIR (writes its pid to cgroup.procs). */
static inline void join_cgroup(const char *dir)
{
	char path[4096], pid[32];
	int fd, len;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path)) {
		fprintf(stderr, BENCH_PROG ": -g: path too long\n");
		exit(2);
	}
	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, BENCH_PROG ": open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (write(fd, pid, len) != len) {
		fprintf(stderr, BENCH_PROG ": write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
}

/* Pins the calling process to CPU; exits 1 when the kernel refuses. */
static inline void pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, BENCH_PROG ": -C %d: %s\n", cpu, strerror(errno));
		exit(1);
	}
}

#endif
