/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* opensnoop: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_OPENSNOOP_H
#define BPFBOX_OPENSNOOP_H

#include "common.h"

#define OPENSNOOP_PATH_MAX 4096     /* the path as passed, NUL included */
#define OPENSNOOP_NAME_MAX 256      /* -F: one directory name, NUL included */
#define OPENSNOOP_DIR_STEPS 48      /* -F: steps up (a directory, or a mount point crossed) */
#define OPENSNOOP_DIR_MAX (OPENSNOOP_NAME_MAX * OPENSNOOP_DIR_STEPS)
#define OPENSNOOP_FLAG_FILTERS 8

enum opensnoop_syscall {
	OPENSNOOP_OPEN = 0,
	OPENSNOOP_OPENAT = 1,
	OPENSNOOP_OPENAT2 = 2,
	OPENSNOOP_CREAT = 3,
};

enum opensnoop_event_flags {
	OPENSNOOP_F_DIR_TRUNCATED = 1,  /* -F: the walk stopped before the root */
	OPENSNOOP_F_DIR_ABSOLUTE = 2,   /* -F: dir holds the names from the root (the walk reached it) */
};

struct opensnoop_config {
	__u32 tid;                  /* keep this thread only, when by_tid */
	__u8 by_tid;
	__u8 failed_only;           /* -x */
	__u8 full_path;             /* -F: resolve relative paths in the kernel */
	__u8 accmodes;              /* -f: bit 0 O_RDONLY, bit 1 O_WRONLY, bit 2 O_RDWR */
	__u32 nflags;               /* -f: how many flag_values are set */
	__u32 name_len;             /* -n: length of name; 0 = any process */
	char name[BPFBOX_COMM_LEN]; /* -n: keep processes whose comm contains this */
	__u64 flag_values[OPENSNOOP_FLAG_FILTERS]; /* -f: an open matches when all bits of one are set */
};

/*
 * One open. data holds the path as passed (path_size bytes, NUL included). With -F and a
 * relative path, the path has the whole first OPENSNOOP_PATH_MAX bytes and the names of the
 * directories it is relative to follow, one OPENSNOOP_NAME_MAX slot per step up, leaf first
 * (dir_size bytes, a multiple of the slot size; a step that crossed a mount point leaves its
 * slot empty). Only the used bytes are sent.
 */
struct opensnoop_event {
	struct bpfbox_task task;
	__s64 ret;                  /* the fd, or -errno */
	__u64 flags;                /* open flags */
	__u64 mode;
	__u64 resolve;              /* openat2 RESOLVE_* */
	__s32 dfd;
	__u32 syscall;              /* enum opensnoop_syscall */
	__u32 event_flags;          /* enum opensnoop_event_flags */
	__u32 path_size;
	__u32 dir_size;
	__u32 pad;
	char data[OPENSNOOP_PATH_MAX + OPENSNOOP_DIR_MAX];
};

_Static_assert(__builtin_offsetof(struct opensnoop_event, data) ==
	       __builtin_offsetof(struct opensnoop_event, pad) + sizeof(__u32), "data follows pad");

#endif
