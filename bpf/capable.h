/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* capable: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_CAPABLE_H
#define BPFBOX_CAPABLE_H

#include "common.h"

#define CAPABLE_STACK_DEPTH 127

enum capable_unique {
	CAPABLE_UNIQUE_NONE = 0,
	CAPABLE_UNIQUE_PROCESS = 1,   /* one event per capability and verdict per process */
	CAPABLE_UNIQUE_CGROUP = 2,    /* one event per capability and verdict per cgroup */
};

/* cap_capable's opts (include/linux/security.h, Linux 5.1 and later) */
#define CAPABLE_OPT_NOAUDIT 0x2
#define CAPABLE_OPT_INSETID 0x4

struct capable_config {
	__u8 unique;            /* enum capable_unique */
	__u8 kernel_stack;      /* -K */
	__u8 user_stack;        /* -U */
	__u8 pad;
};

struct capable_event {
	struct bpfbox_task task;
	__s32 cap;
	__s32 ret;              /* 0: allowed, -EPERM: denied */
	__u32 euid;             /* effective uid of the credentials checked */
	__u32 opts;             /* cap_capable's option word (CAPABLE_OPT_*); 0 from the tracepoint */
	__u64 userns_id;        /* the user namespace the capability is checked in (inode) */
	__s64 kernel_stack_id;  /* -1: none */
	__s64 user_stack_id;    /* -1: none */
};

#endif
