// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * capable: traces capability checks through the capability/cap_capable tracepoint
 * (cred, target_ns, capable_ns, cap, ret). The tracepoint has no audit flag: every check is
 * seen, audited or not, with its verdict.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "capable.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct capable_config capable_cfg = {};

struct unique_key {
	__u64 owner;            /* tgid or cgroup id */
	__s32 cap;
	__s32 ret;              /* a deny is not hidden by an earlier allow */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct unique_key);
	__type(value, __u8);
} seen SEC(".maps");

/* Sized by user space: one entry unless -K or -U. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, CAPABLE_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

SEC("tp/capability/cap_capable")
int cap_capable(struct trace_event_raw_cap_capable *ctx)
{
	struct capable_event e = {};
	const struct cred *cred;
	struct user_namespace *ns;

	if (!bpfbox_filter_task())
		return 0;

	if (capable_cfg.unique) {
		struct unique_key key = {};
		__u8 one = 1;

		key.owner = capable_cfg.unique == CAPABLE_UNIQUE_CGROUP ? bpf_get_current_cgroup_id()
									 : bpf_get_current_pid_tgid() >> 32;
		key.cap = ctx->cap;
		key.ret = ctx->ret;
		if (bpf_map_lookup_elem(&seen, &key))
			return 0;
		bpf_map_update_elem(&seen, &key, &one, BPF_ANY);
	}

	bpfbox_fill_task(&e.task);
	e.cap = ctx->cap;
	e.ret = ctx->ret;
	cred = ctx->cred;
	ns = ctx->target_ns;
	e.euid = BPF_CORE_READ(cred, euid.val);
	e.userns_id = BPF_CORE_READ(ns, ns.inum);
	e.kernel_stack_id = capable_cfg.kernel_stack ? bpf_get_stackid(ctx, &stacks, 0) : -1;
	e.user_stack_id = capable_cfg.user_stack ? bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) : -1;
	bpfbox_emit(&e, sizeof(e));
	return 0;
}
