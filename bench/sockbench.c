// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbench: loopback TCP request/response latency and streaming throughput, for
 * bench/sockmap.py. A listener on 127.0.0.1 and a client connected to it. The connection is made
 * when the program starts: run it inside the cgroup sockmap watches (once sockmap is attached) to
 * measure spliced traffic, elsewhere for plain TCP.
 *
 *   sockbench [-f] rr SIZE N       N round trips: the client writes SIZE bytes, the server reads
 *                                  them and writes SIZE bytes back, the client reads them.
 *                                  Prints "mode=rr size=SIZE n=N p50_ns=.. p99_ns=.. mean_ns=.."
 *   sockbench [-f] stream SIZE MB  the client writes MB MiB in SIZE-byte write() calls, the
 *                                  server reads them into a 256 KiB buffer. Prints
 *                                  "mode=stream size=SIZE bytes=.. ns=.. gbit_s=.. cpu_ns=.."
 *
 * By default both ends are served by one thread with non-blocking sockets: a write, then reads
 * on the other end until it has the bytes (loopback TCP and sockmap both deliver inside the
 * sender's system call, so the bytes are normally there at once). No wake-ups, no scheduler: the
 * figures are the cost of the data path itself, which is what sockmap changes, and they hold
 * still on a busy machine. For streaming, the client writes until the socket is full (EAGAIN)
 * or 256 KiB (one read buffer) are unread, then the server drains. The bound matters: data
 * spliced by sockmap goes straight into the peer's queue, which no receive window limits, so
 * without it the client would queue the whole transfer in kernel memory before the first read.
 * With -f a forked child serves, and each side blocks in read(): the figures then add the
 * wake-ups of two processes (and their placement on CPUs, which makes them noisy on a small VM).
 * The forked writer is not bounded that way: with sockmap it can run ahead of the reader.
 *
 * With -s (either mode) the non-blocking ends spin on EAGAIN instead of sleeping in poll(); with
 * -f -s both processes spin.
 *
 * Request/response sets TCP_NODELAY on both ends (a request must not wait for Nagle);
 * streaming leaves the defaults, as bulk senders do.
 */
#define _GNU_SOURCE
#define BENCH_PROG "sockbench"
#include "benchutil.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_BUFFER (256 * 1024)

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int spin; /* -s: poll in a loop instead of sleeping in poll() */

static void wait_for(int fd, short events)
{
	if (spin)
		return;
	{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, 10000) != 1)
		die("poll (stalled transfer)");
	}
}

/* Writes all n bytes (waits for room when the socket is non-blocking and full). */
static void full_write(int fd, const char *p, long n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EAGAIN) {
			wait_for(fd, POLLOUT);
			continue;
		}
		if (w <= 0)
			die("write");
		p += w;
		n -= w;
	}
}

static void full_read(int fd, char *p, long n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EAGAIN) {
			wait_for(fd, POLLIN);
			continue;
		}
		if (r <= 0)
			die("read");
		p += r;
		n -= r;
	}
}

static int compare(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static void rr(int client, int server, long size, long n, char *buffer)
{
	long long *samples = calloc(n, sizeof(*samples)), sum = 0;

	for (long i = 0; i < n; i++) {
		long long start = clock_ns(CLOCK_MONOTONIC);

		full_write(client, buffer, size);
		if (server >= 0) {
			full_read(server, buffer, size);
			full_write(server, buffer, size);
		}
		full_read(client, buffer, size);
		samples[i] = clock_ns(CLOCK_MONOTONIC) - start;
		sum += samples[i];
	}
	qsort(samples, n, sizeof(*samples), compare);
	printf("mode=rr size=%ld n=%ld p50_ns=%lld p99_ns=%lld mean_ns=%lld\n", size, n, samples[n / 2],
	       samples[n * 99 / 100], sum / n);
}

static void drain(int fd, char *buffer, long long *left)
{
	for (;;) {
		ssize_t r = read(fd, buffer, READ_BUFFER);

		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0)
			die("read");
		*left -= r;
	}
}

static void stream(int client, int server, long size, long long total, char *buffer)
{
	long long start = clock_ns(CLOCK_MONOTONIC), cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	long long sent = 0, left = total;

	if (server >= 0) {
		while (sent < total) {
			ssize_t w = write(client, buffer, total - sent < size ? total - sent : size);

			if (w < 0 && errno == EAGAIN) {
				drain(server, buffer, &left);
				continue;
			}
			if (w <= 0)
				die("write");
			sent += w;
			if (sent - (total - left) >= READ_BUFFER)
				drain(server, buffer, &left);
		}
		while (left > 0) {
			drain(server, buffer, &left);
			if (left > 0)
				wait_for(server, POLLIN);
		}
	} else {
		for (; sent < total; sent += size)
			full_write(client, buffer, total - sent < size ? total - sent : size);
		full_read(client, buffer, 1);
	}
	long long ns = clock_ns(CLOCK_MONOTONIC) - start;
	cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	printf("mode=stream size=%ld bytes=%lld ns=%lld gbit_s=%.2f cpu_ns=%lld\n", size, total, ns, total * 8.0 / ns, cpu);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int one = 1, listener, client, server, is_rr, forked = 0;
	long size, n;
	pid_t child = -1;

	while (argc > 1 && (!strcmp(argv[1], "-f") || !strcmp(argv[1], "-s"))) {
		forked |= !strcmp(argv[1], "-f");
		spin |= !strcmp(argv[1], "-s");
		argv++;
		argc--;
	}
	if (argc != 4 || (strcmp(argv[1], "rr") && strcmp(argv[1], "stream"))) {
		fprintf(stderr, "usage: sockbench [-f] [-s] rr SIZE N | sockbench [-f] [-s] stream SIZE MB\n");
		return 2;
	}
	is_rr = !strcmp(argv[1], "rr");
	size = atol(argv[2]);
	n = atol(argv[3]);
	if (size <= 0 || n <= 0) {
		fprintf(stderr, "sockbench: SIZE and N must be positive\n");
		return 2;
	}
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(listener, (struct sockaddr *)&addr, len) || listen(listener, 1) ||
	    getsockname(listener, (struct sockaddr *)&addr, &len))
		die("listen");
	client = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(client, (struct sockaddr *)&addr, len))
		die("connect");
	server = accept(listener, NULL, NULL);
	if (is_rr) {
		setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	char *buffer = calloc(1, size > READ_BUFFER ? size : READ_BUFFER);

	if (forked) {
		child = fork();
		if (child == 0) {
			close(client);
			if (spin)
				fcntl(server, F_SETFL, O_NONBLOCK);
			if (is_rr) {
				for (long i = 0; i < n; i++) {
					full_read(server, buffer, size);
					full_write(server, buffer, size);
				}
			} else {
				long long left = (long long)n << 20;
				while (left > 0) {
					ssize_t r = read(server, buffer, READ_BUFFER);
					if (r <= 0)
						die("read");
					left -= r;
				}
				full_write(server, buffer, 1);
			}
			_exit(0);
		}
		close(server);
		server = -1;
	}
	if (!forked || spin) {
		fcntl(client, F_SETFL, O_NONBLOCK);
		fcntl(server, F_SETFL, O_NONBLOCK);
	}
	if (is_rr)
		rr(client, server, size, n, buffer);
	else
		stream(client, server, size, (long long)n << 20, buffer);
	if (child > 0)
		waitpid(child, NULL, 0);
	return 0;
}
