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
 *   -r RATE    paced: N opens at RATE per second (CLOCK_MONOTONIC schedule; the loop catches up
 *              when late and sleeps, in steps of about 100 us, when early) instead of as fast as
 *              it can. The line then also has rate=ACHIEVED max_lag_us=L (the largest delay
 *              behind the schedule seen before an open).
 */
#define BENCH_PROG "openloop"
#include <sys/syscall.h>
#include "benchutil.h"

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-g CGROUP] [-C CPU] [-s openat|open] [-w WARMUP] [-r RATE] PATH N\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL, *path;
	long long n, warmup = 0, failed = 0, i, t0, t1, rate = 0, max_lag = 0;
	int opt, cpu = -1, use_open = 0;

	while ((opt = getopt(argc, argv, "g:C:s:w:r:")) != -1) {
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
		case 'r':
			rate = parse_count(optarg, "-r");
			if (rate == 0)
				usage(argv[0]);
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
	if (cpu >= 0)
		pin_cpu(cpu);
	if (cgroup)
		join_cgroup(cgroup);

	t0 = 0;
	for (i = -warmup; i < n; i++) {
		int fd;

		if (i == 0)
			t0 = now_ns();
		if (rate && i >= 0) {
			/* Open number i is due at t0 + i / RATE. */
			long long due = t0 + (long long)((double)i * 1e9 / (double)rate);
			long long now = now_ns();

			if (now < due) {
				/* Early: sleep until about 100 us of opens are due, then go on. */
				long long step = 1000000000LL / rate;
				struct timespec ts;
				long long wake = due + (step < 100000 ? 100000 - step : 0);

				ts.tv_sec = wake / 1000000000LL;
				ts.tv_nsec = wake % 1000000000LL;
				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
					;
			} else if (now - due > max_lag) {
				max_lag = now - due;
			}
		}
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

	printf("iterations=%lld ns=%lld ns_per_op=%.1f failed=%lld pid=%d", n, t1 - t0,
	       n ? (double)(t1 - t0) / (double)n : 0.0, failed, (int)getpid());
	if (rate)
		printf(" rate=%.0f max_lag_us=%.0f", t1 > t0 ? (double)n * 1e9 / (double)(t1 - t0) : 0.0,
		       (double)max_lag / 1e3);
	printf("\n");
	return 0;
}
