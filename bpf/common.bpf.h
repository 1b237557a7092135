/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by every bpfbox BPF program: the event ring and its loss counter. */
#ifndef BPFBOX_COMMON_BPF_H
#define BPFBOX_COMMON_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.h"

/* 1 MiB unless user space sets another size before load (bpf_map__set_max_entries): 37 ms of
 * opensnoop events at 200,000 a second, room for a reader kept off the CPU for a moment. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} events SEC(".maps");

/* Events that did not fit in the ring; user space sums the CPUs and reports them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

static __always_inline void bpfbox_count_lost(void)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&lost_events, &zero);

	if (count)
		__sync_fetch_and_add(count, 1);
}

/* Copies size bytes at data into the ring; a full ring is counted, never silent. */
static __always_inline long bpfbox_emit(void *data, __u64 size)
{
	long err = bpf_ringbuf_output(&events, data, size, 0);

	if (err)
		bpfbox_count_lost();
	return err;
}

/* ::ffff:a.b.c.d: an IPv4 peer reached through an IPv6 socket. */
static __always_inline bool bpfbox_v4_mapped(const __u8 *a)
{
	return !a[0] && !a[1] && !a[2] && !a[3] && !a[4] && !a[5] && !a[6] && !a[7] && !a[8] && !a[9] &&
	       a[10] == 0xff && a[11] == 0xff;
}

static __always_inline __u64 bpfbox_current_mntns(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

/* Who, where and when, for the current task. */
static __always_inline void bpfbox_fill_task(struct bpfbox_task *t)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	t->ts_ns = bpf_ktime_get_ns();
	t->cgroup_id = bpf_get_current_cgroup_id();
	t->mntns_id = bpfbox_current_mntns();
	t->pid = id >> 32;
	t->tid = (__u32)id;
	t->uid = (__u32)uid_gid;
	t->gid = uid_gid >> 32;
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

#endif
