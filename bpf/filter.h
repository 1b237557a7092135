/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Data shared by the BPF side and the Swift side of the task filter. */
#ifndef BPFBOX_FILTER_H
#define BPFBOX_FILTER_H

/* At most this many --cgroup/--container subtrees, and this many --mntns-of namespaces. */
#define BPFBOX_MAX_SELECTORS 8

/* Set before load in .rodata (bpfbox_filter_cfg); all-zero traces everything. */
struct bpfbox_filter_config {
	__u32 tgid;      /* process id to keep, when by_tgid */
	__u32 uid;       /* real uid to keep, when by_uid */
	__u8 by_cgroup;  /* consult cgroup_filter (bcc --cgroupmap layout) */
	__u8 by_mntns;   /* consult mntns_filter (bcc --mntnsmap layout) */
	__u8 by_tgid;
	__u8 by_uid;
	__u8 by_tree;    /* consult traced_tgids: a command bpfbox started and its descendants */
	__u8 subtrees;   /* --cgroup, --container: keep tasks below one of these cgroups */
	__u8 namespaces; /* --mntns-of: keep tasks in one of these mount namespaces */
	__u8 walk_ancestors; /* no bpf_get_current_ancestor_cgroup_id for tracing programs (5.10):
			      * read the ancestors from the task's cgroup with CO-RE instead */
	/* A task is below cgroup subtree_id[i] when its ancestor at subtree_level[i] (0: the
	 * cgroup2 root) is that cgroup. */
	__u32 subtree_level[BPFBOX_MAX_SELECTORS];
	__u64 subtree_id[BPFBOX_MAX_SELECTORS];
	__u64 mntns_id[BPFBOX_MAX_SELECTORS];
};

#endif
