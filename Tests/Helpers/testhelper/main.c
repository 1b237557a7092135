// testhelper: small system-call drivers for the integration tests.
//   testhelper execveat PROGRAM [ARGS...]   execveat(open(PROGRAM, O_PATH), "", argv, envp, AT_EMPTY_PATH)
//   testhelper openat2 PATH                 openat2(AT_FDCWD, PATH, {O_RDONLY}) and close
//   testhelper openat DIR NAME              openat(open(DIR, O_PATH|O_DIRECTORY), NAME, O_RDONLY)
//   testhelper rawsock [N]                  socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) N times: needs CAP_NET_RAW
//   testhelper udp RECVCG SENDCG COUNT SIZE a receiving UDP socket made in cgroup RECVCG and a sending
//                                           one made in SENDCG (cgroup-v2 directories; "-": where
//                                           it runs): COUNT datagrams of SIZE bytes between them
//   testhelper chown PATH                   chown(PATH, 65534, 65534): needs CAP_CHOWN
//   testhelper connect ADDR PORT            TCP connect; prints "lport N" when established
//   testhelper tcpio ADDR SEND RECV         listens on ADDR, connects to itself, the client sends
//                                           SEND bytes and receives RECV bytes; prints "lport N"
//                                           (client side) and "rport N" (the listener's port)
//   testhelper tcpsession ADDR              the same pair, then for each line "SEND RECV" read from
//                                           stdin moves the bytes and prints "moved"
//   testhelper splice MODE SERVERCG CLIENTCG SIZE...
//                                           a listener made in cgroup SERVERCG, a client made in
//                                           CLIENTCG ("-": where it runs); MODE 4 (127.0.0.1), 6
//                                           (::1) or mapped (a dual-stack [::] listener, an IPv4
//                                           client: the server end is a v4-mapped IPv6 socket).
//                                           A child process serves: for each SIZE the client sends
//                                           SIZE patterned bytes, the server checks them and
//                                           answers SIZE bytes of another pattern, which the
//                                           client checks. Prints "lport N" and "rport N", a line
//                                           "ok SIZE UP DOWN" per size (FNV-1a of the bytes each
//                                           way) and "tcp_bytes_sent N" (TCP_INFO of the client:
//                                           payload that went through TCP; 0 when all was spliced)
//   testhelper storm opens|execs PREFIX N   waits for a line on stdin (so that a tracer can attach
//                                           meanwhile), then makes N failing opens of PREFIX-i, or N
//                                           execs of /bin/true PREFIX-i (vfork), as fast as it can;
//                                           prints "generated N ns T". Nothing else it does is traced
//                                           by opensnoop or execsnoop after the line.
// Each prints "pid N" first, then "result R" (the call's return value, or -errno).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/openat2.h>
#include <linux/tcp.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int report(long ret)
{
	printf("result %ld\n", ret < 0 ? -(long)errno : ret);
	fflush(stdout);
	return ret < 0 ? 1 : 0;
}

static int make_addr(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return AF_INET6;
	}
	return -1;
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	getsockname(fd, (struct sockaddr *)&ss, &len);
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					       : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int do_connect(const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family = make_addr(addr, port, &ss, &len), fd;

	if (family < 0)
		return 2;
	fd = socket(family, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
		printf("lport %d\n", local_port(fd));
		close(fd);
		return report(0);
	}
	return report(-1);
}

static int move_bytes(int from, int to, long bytes)
{
	char buffer[65536];
	long moved = 0;

	memset(buffer, 'b', sizeof(buffer));
	while (moved < bytes) {
		long chunk = bytes - moved < (long)sizeof(buffer) ? bytes - moved : (long)sizeof(buffer);
		ssize_t n = send(from, buffer, chunk, 0);

		if (n <= 0)
			return -1;
		for (ssize_t got = 0; got < n;) {
			ssize_t r = recv(to, buffer, n - got, 0);

			if (r <= 0)
				return -1;
			got += r;
		}
		moved += n;
	}
	return 0;
}

static int do_tcpio(const char *addr, long send_bytes, long recv_bytes, int session)
{
	char line[128];
	struct sockaddr_storage ss;
	socklen_t len;
	int family = make_addr(addr, 0, &ss, &len), listener, client, server;

	if (family < 0)
		return 2;
	listener = socket(family, SOCK_STREAM, 0);
	if (bind(listener, (struct sockaddr *)&ss, len) || listen(listener, 1))
		return report(-1);
	getsockname(listener, (struct sockaddr *)&ss, &len);
	client = socket(family, SOCK_STREAM, 0);
	if (connect(client, (struct sockaddr *)&ss, len))
		return report(-1);
	server = accept(listener, NULL, NULL);
	printf("lport %d\nrport %d\n", local_port(client), local_port(listener));
	fflush(stdout);
	if (move_bytes(client, server, send_bytes) || move_bytes(server, client, recv_bytes))
		return report(-1);
	while (session && fgets(line, sizeof(line), stdin)) {
		if (sscanf(line, "%ld %ld", &send_bytes, &recv_bytes) != 2)
			break;
		if (move_bytes(client, server, send_bytes) || move_bytes(server, client, recv_bytes))
			return report(-1);
		printf("moved\n");
		fflush(stdout);
	}
	close(client);
	close(server);
	close(listener);
	return report(0);
}

static int join_cgroup(const char *dir)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", getpid());
	return fclose(f);
}

static int do_udp(const char *recv_cgroup, const char *send_cgroup, int count, int size)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	char buffer[65536];
	int rx, tx;

	/* A socket belongs to the cgroup its creator was in when it was made. */
	if (size > (int)sizeof(buffer) || (strcmp(send_cgroup, "-") && join_cgroup(send_cgroup)))
		return report(-1);
	tx = socket(AF_INET, SOCK_DGRAM, 0);
	if (join_cgroup(recv_cgroup))
		return report(-1);
	rx = socket(AF_INET, SOCK_DGRAM, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(rx, (struct sockaddr *)&addr, sizeof(addr)) || getsockname(rx, (struct sockaddr *)&addr, &len))
		return report(-1);
	/* A datagram dropped on a busy loopback must not hang the test. */
	struct timeval timeout = { .tv_sec = 5 };
	setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	memset(buffer, 'u', size);
	for (int i = 0; i < count; i++) {
		if (sendto(tx, buffer, size, 0, (struct sockaddr *)&addr, sizeof(addr)) != size)
			return report(-1);
		if (recv(rx, buffer, sizeof(buffer), 0) != size)
			return report(-1);
	}
	return report(0);
}

/* The byte at offset i of a transfer of size n in direction dir: any corruption, reordering or
 * loss shows. */
static unsigned char pattern(long i, long n, int dir)
{
	return (unsigned char)((i * 2654435761u + n * 40503u + dir * 97u) >> 7);
}

static unsigned long fnv(unsigned long h, const unsigned char *p, long n)
{
	for (long i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ul;
	return h;
}

static int send_pattern(int fd, long n, int dir, unsigned long *sum)
{
	static unsigned char buffer[65536];

	for (long done = 0; done < n;) {
		long chunk = n - done < (long)sizeof(buffer) ? n - done : (long)sizeof(buffer);

		for (long i = 0; i < chunk; i++)
			buffer[i] = pattern(done + i, n, dir);
		ssize_t w = write(fd, buffer, chunk);
		if (w <= 0)
			return -1;
		*sum = fnv(*sum, buffer, w);
		done += w;
	}
	return 0;
}

static int check_pattern(int fd, long n, int dir, unsigned long *sum)
{
	static unsigned char buffer[65536];

	for (long done = 0; done < n;) {
		/* A stalled transfer must fail the test, not hang it. */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			return -1;
		ssize_t r = read(fd, buffer, n - done < (long)sizeof(buffer) ? n - done : (long)sizeof(buffer));
		if (r <= 0)
			return -1;
		for (long i = 0; i < r; i++)
			if (buffer[i] != pattern(done + i, n, dir))
				return -2;
		*sum = fnv(*sum, buffer, r);
		done += r;
	}
	return 0;
}

/* A listener on ::1 (v6), on [::] accepting IPv4 too (mapped), or on 127.0.0.1. */
static int make_listener(int v6, int mapped, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int zero = 0, fd;

	make_addr(v6 ? "::1" : mapped ? "::" : "127.0.0.1", 0, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (mapped)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 1))
		return -1;
	*port = local_port(fd);
	return fd;
}

static int do_splice(const char *mode, const char *server_cgroup, const char *client_cgroup, int count, char **sizes)
{
	int v6 = !strcmp(mode, "6"), mapped = !strcmp(mode, "mapped"), status, port;
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	unsigned long sum = 1469598103934665603ul, ignored = 0;
	struct tcp_info info;
	int listener, client, server;
	pid_t child;

	/* A socket belongs to the cgroup its creator was in at socket(): with a server cgroup, the
	 * client socket is made first (in its cgroup, or where the helper runs), then the listener. */
	if (strcmp(server_cgroup, "-")) {
		if (strcmp(client_cgroup, "-") && join_cgroup(client_cgroup))
			return report(-1);
		client = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		if (join_cgroup(server_cgroup) || (listener = make_listener(v6, mapped, &port)) < 0)
			return report(-1);
	} else {
		if ((listener = make_listener(v6, mapped, &port)) < 0)
			return report(-1);
		if (strcmp(client_cgroup, "-") && join_cgroup(client_cgroup))
			return report(-1);
		client = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	}
	make_addr(v6 ? "::1" : "127.0.0.1", port, &ss, &len);
	if (connect(client, (struct sockaddr *)&ss, len))
		return report(-1);
	server = accept(listener, NULL, NULL);
	printf("lport %d\nrport %d\n", local_port(client), port);
	fflush(stdout);
	child = fork();
	if (child == 0) {
		close(client);
		for (int i = 0; i < count; i++) {
			long n = atol(sizes[i]);

			if (check_pattern(server, n, 0, &ignored) || send_pattern(server, n, 1, &ignored))
				_exit(1);
		}
		_exit(0);
	}
	close(server);
	for (int i = 0; i < count; i++) {
		long n = atol(sizes[i]);
		unsigned long up = sum, down = sum;
		int err;

		if (send_pattern(client, n, 0, &up))
			return report(-1);
		if ((err = check_pattern(client, n, 1, &down))) {
			printf("%s %ld\n", err == -2 ? "corrupt" : "short", n);
			return report(-1);
		}
		printf("ok %ld %lx %lx\n", n, up, down);
		fflush(stdout);
	}
	len = sizeof(info);
	if (getsockopt(client, IPPROTO_TCP, TCP_INFO, &info, &len))
		return report(-1);
	printf("tcp_bytes_sent %llu\n", (unsigned long long)info.tcpi_bytes_sent);
	close(client);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		return report(-EIO);
	return report(0);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int do_storm(const char *kind, const char *prefix, long n)
{
	char line[16], path[4096], *args[3] = { "true", path, NULL };
	int execs = !strcmp(kind, "execs");
	long long start;

	if (!execs && strcmp(kind, "opens"))
		return report(-EINVAL);
	if (read(0, line, sizeof(line)) <= 0)
		return report(-EIO);
	start = now_ns();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s-%ld", prefix, i);
		if (execs) {
			pid_t child = vfork();

			if (child == 0) {
				execve("/bin/true", args, environ);
				_exit(127);
			}
			if (child < 0 || waitpid(child, NULL, 0) != child)
				return report(-errno);
		} else {
			openat(AT_FDCWD, path, O_RDONLY);
		}
	}
	printf("generated %ld ns %lld\n", n, now_ns() - start);
	return report(0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: testhelper execveat|openat2|openat|rawsock|chown ARGS...\n");
		return 2;
	}
	printf("pid %d\n", getpid());
	fflush(stdout);
	if (!strcmp(argv[1], "execveat") && argc >= 3) {
		int fd = open(argv[2], O_PATH | O_CLOEXEC);

		if (fd < 0)
			return report(-1);
		syscall(SYS_execveat, fd, "", &argv[2], environ, AT_EMPTY_PATH);
		return report(-1);
	}
	if (!strcmp(argv[1], "openat2") && argc == 3) {
		struct open_how how = { .flags = O_RDONLY };
		long fd = syscall(SYS_openat2, AT_FDCWD, argv[2], &how, sizeof(how));

		if (fd >= 0)
			close(fd);
		return report(fd);
	}
	if (!strcmp(argv[1], "openat") && argc == 4) {
		int dir = open(argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
		int fd;

		if (dir < 0)
			return report(-1);
		fd = openat(dir, argv[3], O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		return report(fd);
	}
	if (!strcmp(argv[1], "rawsock") && argc <= 3) {
		int times = argc == 3 ? atoi(argv[2]) : 1, fd = -1;

		for (int i = 0; i < times; i++) {
			fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
			if (fd >= 0)
				close(fd);
		}
		return report(fd);
	}
	if (!strcmp(argv[1], "connect") && argc == 4)
		return do_connect(argv[2], atoi(argv[3]));
	if (!strcmp(argv[1], "tcpio") && argc == 5)
		return do_tcpio(argv[2], atol(argv[3]), atol(argv[4]), 0);
	if (!strcmp(argv[1], "tcpsession") && argc == 3)
		return do_tcpio(argv[2], 0, 0, 1);
	if (!strcmp(argv[1], "splice") && argc >= 6)
		return do_splice(argv[2], argv[3], argv[4], argc - 5, argv + 5);
	if (!strcmp(argv[1], "udp") && argc == 6)
		return do_udp(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(argv[1], "storm") && argc == 5)
		return do_storm(argv[2], argv[3], atol(argv[4]));
	if (!strcmp(argv[1], "chown") && argc == 3)
		return report(chown(argv[2], 65534, 65534));
	fprintf(stderr, "testhelper: bad arguments\n");
	return 2;
}
