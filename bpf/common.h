/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Data shared by every applet's event: who did it, where, when. */
#ifndef BPFBOX_COMMON_H
#define BPFBOX_COMMON_H

#define BPFBOX_COMM_LEN 16

/* The first member of every per-task event; filled by bpfbox_fill_task(). */
struct bpfbox_task {
	__u64 ts_ns;            /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 cgroup_id;        /* cgroup-v2 id */
	__u64 mntns_id;         /* mount namespace inode */
	__u32 pid;              /* process id (tgid) */
	__u32 tid;              /* thread id */
	__u32 uid;              /* real uid */
	__u32 gid;              /* real gid */
	char comm[BPFBOX_COMM_LEN];
};

#endif
