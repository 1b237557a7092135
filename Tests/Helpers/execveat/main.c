// execveat-helper: runs PROGRAM through execveat(2), for the tests.
//   execveat-helper PROGRAM [ARGS...]      execveat(open(PROGRAM, O_PATH), "", argv, envp, AT_EMPTY_PATH)
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	int fd;

	if (argc < 2) {
		fprintf(stderr, "usage: execveat-helper PROGRAM [ARGS...]\n");
		return 2;
	}
	fd = open(argv[1], O_PATH | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	syscall(SYS_execveat, fd, "", &argv[1], environ, AT_EMPTY_PATH);
	perror("execveat");
	return 1;
}
