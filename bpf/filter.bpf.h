/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The task filter every tracing program calls first: process id, uid, and the container
 * filters with bcc's pinned-map contract:
 *   cgroup_filter: HASH, key u64 cgroup-v2 id (host order), value u64 (ignored)
 *   mntns_filter:  HASH, key u64 mount-namespace inode,      value u32 (ignored)
 * User space replaces these maps with the pinned ones (bpf_map__reuse_fd) before load, so
 * entries added or removed while a tool runs take effect at once. When both are given an
 * event must match both.
 */
#ifndef BPFBOX_FILTER_BPF_H
#define BPFBOX_FILTER_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.bpf.h"
#include "filter.h"

const volatile struct bpfbox_filter_config bpfbox_filter_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u32);
} mntns_filter SEC(".maps");

/* Processes started by bpfbox (--exec) and their descendants, by tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} traced_tgids SEC(".maps");

/*
 * The follow programs are loaded only when by_tree is set (user space turns autoload off).
 * BTF tracepoints: the fork hook sees the child task, so a new thread (already in the tree by
 * its tgid) is not added; the exit hook sees the task, so a process leaves the tree only when
 * its last thread exits (a thread's exec, which ends the old leader, keeps it in).
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(bpfbox_follow_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	if (child_tgid != parent_tgid && bpf_map_lookup_elem(&traced_tgids, &parent_tgid))
		bpf_map_update_elem(&traced_tgids, &child_tgid, &one, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(bpfbox_follow_exit, struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		bpf_map_delete_elem(&traced_tgids, &tgid);
	return 0;
}

/* Before Linux 6.0 struct cgroup kept its ancestors' ids, not pointers to them. */
struct cgroup___ids {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

/*
 * The id of the current task's cgroup-v2 ancestor at `level` (0: the root), 0 when the task's
 * cgroup is not that deep: bpf_get_current_ancestor_cgroup_id where tracing programs may call
 * it, else the same answer read from the task's default-hierarchy cgroup.
 */
static __always_inline __u64 bpfbox_ancestor_cgroup_id(__u32 level)
{
	struct task_struct *task;
	struct cgroup *cgrp, *ancestor = NULL;
	__u64 id = 0;

	if (!bpfbox_filter_cfg.walk_ancestors)
		return bpf_get_current_ancestor_cgroup_id(level);
	task = (struct task_struct *)bpf_get_current_task();
	cgrp = BPF_CORE_READ(task, cgroups, dfl_cgrp);
	if (!cgrp || level > (__u32)BPF_CORE_READ(cgrp, level))
		return 0;
	if (bpf_core_field_exists(struct cgroup___ids, ancestor_ids)) {
		bpf_core_read(&id, sizeof(id), &((struct cgroup___ids *)cgrp)->ancestor_ids[level]);
		return id;
	}
	bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[level]);
	return BPF_CORE_READ(ancestor, kn, id);
}

/* --cgroup, --container: the current task's cgroup is one of the selected ones or below one. */
static __always_inline bool bpfbox_in_subtrees(void)
{
	for (int i = 0; i < BPFBOX_MAX_SELECTORS; i++) {
		if (i >= bpfbox_filter_cfg.subtrees)
			break;
		if (bpfbox_ancestor_cgroup_id(bpfbox_filter_cfg.subtree_level[i]) ==
		    bpfbox_filter_cfg.subtree_id[i])
			return true;
	}
	return false;
}

/* --mntns-of: the current task is in one of the selected mount namespaces. */
static __always_inline bool bpfbox_in_namespaces(void)
{
	__u64 mntns = bpfbox_current_mntns();

	for (int i = 0; i < BPFBOX_MAX_SELECTORS; i++) {
		if (i >= bpfbox_filter_cfg.namespaces)
			break;
		if (mntns == bpfbox_filter_cfg.mntns_id[i])
			return true;
	}
	return false;
}

/*
 * True when the current task is selected. Cheapest checks first. Each kind of selector must
 * match (AND); within a kind, any of the selected cgroups or namespaces will do (OR).
 */
static __always_inline bool bpfbox_filter_task(void)
{
	if (bpfbox_filter_cfg.by_tgid &&
	    (bpf_get_current_pid_tgid() >> 32) != bpfbox_filter_cfg.tgid)
		return false;
	if (bpfbox_filter_cfg.by_tree) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (!bpf_map_lookup_elem(&traced_tgids, &tgid))
			return false;
	}
	if (bpfbox_filter_cfg.by_uid &&
	    (__u32)bpf_get_current_uid_gid() != bpfbox_filter_cfg.uid)
		return false;
	if (bpfbox_filter_cfg.by_cgroup) {
		__u64 cgroup_id = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&cgroup_filter, &cgroup_id))
			return false;
	}
	if (bpfbox_filter_cfg.by_mntns) {
		__u64 mntns = bpfbox_current_mntns();

		if (!bpf_map_lookup_elem(&mntns_filter, &mntns))
			return false;
	}
	if (bpfbox_filter_cfg.subtrees && !bpfbox_in_subtrees())
		return false;
	if (bpfbox_filter_cfg.namespaces && !bpfbox_in_namespaces())
		return false;
	return true;
}

#endif
