/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* execsnoop: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_EXECSNOOP_H
#define BPFBOX_EXECSNOOP_H

#include "common.h"

#define EXECSNOOP_PATH_MAX 4096   /* room for the filename, NUL included */
#define EXECSNOOP_ARGV_MAX 4096   /* room for the argv block */
#define EXECSNOOP_ARGS_SIZE (EXECSNOOP_PATH_MAX + EXECSNOOP_ARGV_MAX)
#define EXECSNOOP_ENTER_ARGS 64   /* argv strings read at syscall entry (failed execs) */
#define EXECSNOOP_ENTER_ARG_LEN 256

enum execsnoop_flags {
	EXECSNOOP_F_EXECVEAT = 1,       /* execveat(2), not execve(2) */
	EXECSNOOP_F_ARGV_TRUNCATED = 2, /* argv did not fit; more arguments followed */
	EXECSNOOP_F_FROM_ENTRY = 4,     /* filename and argv read at syscall entry (best effort) */
	EXECSNOOP_F_SCRIPT = 8,         /* an interpreter ran the file (#!): argv starts with it */
};

struct execsnoop_config {
	__u32 ppid;             /* keep only children of this process, when by_ppid */
	__u8 by_ppid;
	__u8 include_failed;    /* report execs that returned an error (-x) */
	__u8 pad[2];
};

/*
 * One exec. args holds the filename (NUL-terminated, filename_size bytes with the NUL)
 * followed by the argv block as the new program sees it (argv[0] NUL argv[1] NUL ...);
 * only header + args_size bytes are sent.
 */
struct execsnoop_event {
	struct bpfbox_task task;  /* comm is the new program's; ts_ns is taken at syscall exit */
	__u32 ppid;
	__s32 retval;
	__u32 flags;
	__u32 filename_size;
	__u32 args_size;
	char args[EXECSNOOP_ARGS_SIZE];
};

/* User space finds args right after args_size. */
_Static_assert(__builtin_offsetof(struct execsnoop_event, args) ==
	       __builtin_offsetof(struct execsnoop_event, args_size) + sizeof(__u32), "args follows args_size");

#endif
