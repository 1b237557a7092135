// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroup_lookup: the floor of a container filter, for bench/opensnoop.py. On the enter and exit
 * tracepoints of every open system call bpfbox's opensnoop attaches to (open, creat, openat,
 * openat2), it does only what a cgroup filter cannot avoid: bpf_get_current_cgroup_id() and a
 * lookup of that id in a hash map (bcc's --cgroupmap layout: key u64, value u64), and returns.
 * Run by bench/ref/loader, with the map replaced by the pinned map bpfbox is given
 * (-M cgroup_filter=PIN), so both look up the same map.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_filter SEC(".maps");

static __always_inline int lookup(void)
{
	__u64 id = bpf_get_current_cgroup_id();

	if (bpf_map_lookup_elem(&cgroup_filter, &id))
		return 0;
	return 0;
}

#define HOOK(name)                                                  \
	SEC("tp/syscalls/" #name)                                   \
	int name(void *ctx)                                         \
	{                                                           \
		return lookup();                                    \
	}

HOOK(sys_enter_open)
HOOK(sys_exit_open)
HOOK(sys_enter_creat)
HOOK(sys_exit_creat)
HOOK(sys_enter_openat)
HOOK(sys_exit_openat)
HOOK(sys_enter_openat2)
HOOK(sys_exit_openat2)
