// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcploop: loopback TCP loops for bench/tcp.py, one process, one thread.
 *
 *   tcploop [-C CPU] [-w WARMUP] send N SIZE
 *   tcploop [-C CPU] [-w WARMUP] connect N
 *
 * send     Opens a listener on 127.0.0.1 (ephemeral port), connects to it and accepts, so that
 *          both ends of one connection are in this process. TCP_NODELAY on the client, so every
 *          send() puts a segment on the wire. Then N times: one send() of SIZE bytes on the
 *          client (MSG_DONTWAIT), then recv(MSG_DONTWAIT) on the server end until it would
 *          block. Loopback normally delivers in the sender's context (softirq on the way out of
 *          send()), so the receive queue holds the bytes by the time send() returns: each
 *          iteration is one send() and two recv() calls (bytes, then EAGAIN; recvs= counts
 *          them). With MSG_DONTWAIT on both sides the loop never sleeps and cannot deadlock. A short or
 *          refused send (the peer's window full) drains and sends the rest; such calls are
 *          counted (extra=) and none is expected.
 *
 * connect  Opens a listener on 127.0.0.1, then N times: socket(), connect() (blocking; on
 *          loopback the handshake completes inside the call), accept() on the listener,
 *          close() of the accepted end and then of the client. The server closes first, so the
 *          TIME_WAIT sockets are the server's, which hold no ephemeral port: the loop does not
 *          run out of ports.
 *
 * Prints one line on stdout:
 *
 *   mode=send iterations=N size=SIZE ns=TOTAL ns_per_op=X cpu_per_op=C ns_per_call=Y call_p50=M
 *       extra=E recvs=R pid=P
 *   mode=connect iterations=N ns=TOTAL ns_per_op=X cpu_per_op=C ns_per_call=Y call_p50=M pid=P
 *
 * TOTAL is CLOCK_MONOTONIC around the N timed iterations; ns_per_op is TOTAL / N (for send:
 * the send() and the recv() calls that drain it; for connect: socket, connect, accept and both
 * closes). cpu_per_op is the process's CPU time (CLOCK_PROCESS_CPUTIME_ID, user + system) over
 * the same iterations, / N: unlike ns_per_op it leaves out the time other tasks ran on the
 * loop's CPU. ns_per_call is the time inside send() (respectively connect()) alone, from
 * CLOCK_MONOTONIC readings on either side of each call, averaged over the N iterations;
 * call_p50 is the median of those N durations (occasional preempted or interrupted calls do
 * not move it). The two vDSO clock reads per iteration are in ns_per_op, not in
 * the call figures. For send, an iteration's call time sums its send() calls (one, extra=0).
 *
 *   -C CPU     pin the process to this CPU first.
 *   -w WARMUP  untimed iterations before the timed ones (default 0).
 */
#define _GNU_SOURCE
#define BENCH_PROG "tcploop"
#include "benchutil.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_BUFFER (256 * 1024)

static void die(const char *what)
{
	fprintf(stderr, "tcploop: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int compare_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* Median of n durations (sorts them). */
static double median(long long *v, long long n)
{
	if (n == 0)
		return 0.0;
	qsort(v, (size_t)n, sizeof(*v), compare_ll);
	return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2.0;
}

static long long *call_array(long long n)
{
	long long *v = calloc((size_t)(n ? n : 1), sizeof(long long));

	if (!v)
		die("calloc");
	return v;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-C CPU] [-w WARMUP] send N SIZE\n"
			"       %s [-C CPU] [-w WARMUP] connect N\n", argv0, argv0);
	exit(2);
}

/* A listener on 127.0.0.1 with an ephemeral port; its address in *addr. */
static int listen_loopback(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr->sin_port = 0;
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0)
		die("bind 127.0.0.1");
	if (listen(fd, 128) < 0)
		die("listen");
	if (getsockname(fd, (struct sockaddr *)addr, &len) < 0)
		die("getsockname");
	return fd;
}

/* Reads what the server end holds, without waiting; returns the number of recv() calls. */
static long long drain(int fd, char *buf)
{
	long long calls = 0;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, RECV_BUFFER, MSG_DONTWAIT);
		calls++;
		if (n > 0)
			continue;
		if (n == 0) {
			fprintf(stderr, "tcploop: the connection closed\n");
			exit(1);
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return calls;
		if (errno != EINTR)
			die("recv");
	}
}

static int run_send(long long n, long long warmup, size_t size)
{
	struct sockaddr_in addr;
	long long i, t0 = 0, t1, c0 = 0, c1, in_call = 0, extra = 0, recvs = 0, *calls;
	int listener, client, server, one = 1;
	char *payload, *buf;

	if (size == 0) {
		fprintf(stderr, "tcploop: send: SIZE must be at least 1\n");
		return 2;
	}
	payload = calloc(1, size);
	buf = malloc(RECV_BUFFER);
	if (!payload || !buf)
		die("malloc");
	memset(payload, 'x', size);

	listener = listen_loopback(&addr);
	client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (client < 0)
		die("socket");
	if (setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("TCP_NODELAY");
	if (connect(client, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect");
	server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (server < 0)
		die("accept");
	close(listener);
	calls = call_array(n);

	for (i = -warmup; i < n; i++) {
		size_t left = size;
		long long this_call = 0;
		int first = 1;

		if (i == 0) {
			c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
			t0 = now_ns();
			in_call = extra = recvs = 0;
		}
		while (left > 0) {
			long long s0, s1;
			ssize_t sent;

			s0 = now_ns();
			sent = send(client, payload + (size - left), left, MSG_DONTWAIT | MSG_NOSIGNAL);
			s1 = now_ns();
			this_call += s1 - s0;
			if (!first)
				extra++;
			first = 0;
			if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				die("send");
			if (sent > 0)
				left -= (size_t)sent;
			recvs += drain(server, buf);
		}
		in_call += this_call;
		if (i >= 0)
			calls[i] = this_call;
	}
	t1 = now_ns();
	c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (n == 0)
		t0 = t1, c0 = c1;

	printf("mode=send iterations=%lld size=%zu ns=%lld ns_per_op=%.1f cpu_per_op=%.1f ns_per_call=%.1f "
	       "call_p50=%.1f extra=%lld recvs=%lld pid=%d\n", n, size, t1 - t0,
	       n ? (double)(t1 - t0) / (double)n : 0.0, n ? (double)(c1 - c0) / (double)n : 0.0,
	       n ? (double)in_call / (double)n : 0.0, median(calls, n), extra, recvs, (int)getpid());
	close(client);
	close(server);
	free(calls);
	free(payload);
	free(buf);
	return 0;
}

static int run_connect(long long n, long long warmup)
{
	struct sockaddr_in addr;
	long long i, t0 = 0, t1, c0 = 0, c1, in_call = 0, *calls;
	int listener;

	listener = listen_loopback(&addr);
	calls = call_array(n);
	for (i = -warmup; i < n; i++) {
		long long s0, s1;
		int client, server, rc;

		if (i == 0) {
			c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
			t0 = now_ns();
			in_call = 0;
		}
		client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (client < 0)
			die("socket");
		s0 = now_ns();
		rc = connect(client, (struct sockaddr *)&addr, sizeof(addr));
		s1 = now_ns();
		if (rc < 0)
			die("connect");
		in_call += s1 - s0;
		if (i >= 0)
			calls[i] = s1 - s0;
		server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (server < 0)
			die("accept");
		close(server);
		close(client);
	}
	t1 = now_ns();
	c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (n == 0)
		t0 = t1, c0 = c1;

	printf("mode=connect iterations=%lld ns=%lld ns_per_op=%.1f cpu_per_op=%.1f ns_per_call=%.1f "
	       "call_p50=%.1f pid=%d\n", n, t1 - t0, n ? (double)(t1 - t0) / (double)n : 0.0,
	       n ? (double)(c1 - c0) / (double)n : 0.0, n ? (double)in_call / (double)n : 0.0,
	       median(calls, n), (int)getpid());
	free(calls);
	close(listener);
	return 0;
}

int main(int argc, char **argv)
{
	long long warmup = 0;
	int opt, cpu = -1, args;

	while ((opt = getopt(argc, argv, "+C:w:")) != -1) {
		switch (opt) {
		case 'C':
			cpu = (int)parse_count(optarg, "-C");
			break;
		case 'w':
			warmup = parse_count(optarg, "-w");
			break;
		default:
			usage(argv[0]);
		}
	}
	args = argc - optind;
	if (args < 1)
		usage(argv[0]);
	if (cpu >= 0)
		pin_cpu(cpu);
	if (strcmp(argv[optind], "send") == 0 && args == 3)
		return run_send(parse_count(argv[optind + 1], "N"), warmup,
				(size_t)parse_count(argv[optind + 2], "SIZE"));
	if (strcmp(argv[optind], "connect") == 0 && args == 2)
		return run_connect(parse_count(argv[optind + 1], "N"), warmup);
	usage(argv[0]);
	return 2;
}
