/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Data shared by the BPF side and the Swift side of the task filter. */
#ifndef BPFBOX_FILTER_H
#define BPFBOX_FILTER_H

/* Set before load in .rodata (bpfbox_filter_cfg); all-zero traces everything. */
struct bpfbox_filter_config {
	__u32 tgid;      /* process id to keep, when by_tgid */
	__u32 uid;       /* real uid to keep, when by_uid */
	__u8 by_cgroup;  /* consult cgroup_filter (bcc --cgroupmap layout) */
	__u8 by_mntns;   /* consult mntns_filter (bcc --mntnsmap layout) */
	__u8 by_tgid;
	__u8 by_uid;
	__u8 by_tree;    /* consult traced_tgids: a command bpfbox started and its descendants */
	__u8 pad[3];
};

#endif
