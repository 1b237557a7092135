// testhelper: small system-call drivers for the integration tests.
//   testhelper execveat PROGRAM [ARGS...]   execveat(open(PROGRAM, O_PATH), "", argv, envp, AT_EMPTY_PATH)
//   testhelper openat2 PATH                 openat2(AT_FDCWD, PATH, {O_RDONLY}) and close
//   testhelper openat DIR NAME              openat(open(DIR, O_PATH|O_DIRECTORY), NAME, O_RDONLY)
//   testhelper rawsock [N]                  socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) N times: needs CAP_NET_RAW
//   testhelper chown PATH                   chown(PATH, 65534, 65534): needs CAP_CHOWN
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
#include <linux/openat2.h>

extern char **environ;

static int report(long ret)
{
	printf("result %ld\n", ret < 0 ? -(long)errno : ret);
	fflush(stdout);
	return ret < 0 ? 1 : 0;
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
	if (!strcmp(argv[1], "chown") && argc == 3)
		return report(chown(argv[2], 65534, 65534));
	fprintf(stderr, "testhelper: bad arguments\n");
	return 2;
}
