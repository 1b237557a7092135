// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * capable: traces capability checks, through the first of these the kernel offers (user space
 * turns the others off before load):
 *   tp/capability/cap_capable          (cred, target_ns, capable_ns, cap, ret): no option word,
 *                                      so audit and insetid are unknown
 *   fexit/cap_capable                  cap_capable(cred, ns, cap, opts) and its return value
 *   kprobe + kretprobe/cap_capable     the same, the event kept per thread from entry to return
 * Every check is seen, audited or not, with its verdict.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
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

/* kprobe path: the check of each thread between cap_capable's entry and its return. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct capable_event);
} inflight SEC(".maps");

/* Fills e for a check by the current task; false when the task is filtered out. */
static __always_inline bool begin_check(void *ctx, struct capable_event *e, const struct cred *cred,
					struct user_namespace *ns, int cap, __u32 opts)
{
	if (!bpfbox_filter_task())
		return false;
	bpfbox_fill_task(&e->task);
	e->cap = cap;
	e->opts = opts;
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->userns_id = BPF_CORE_READ(ns, ns.inum);
	e->kernel_stack_id = capable_cfg.kernel_stack ? bpf_get_stackid(ctx, &stacks, 0) : -1;
	e->user_stack_id = capable_cfg.user_stack ? bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) : -1;
	return true;
}

/* Sets the verdict and sends the event, unless --unique has seen it already. */
static __always_inline void finish_check(struct capable_event *e, int ret)
{
	e->ret = ret;
	if (capable_cfg.unique) {
		struct unique_key key = {};
		__u8 one = 1;

		key.owner = capable_cfg.unique == CAPABLE_UNIQUE_CGROUP ? e->task.cgroup_id : e->task.pid;
		key.cap = e->cap;
		key.ret = ret;
		if (bpf_map_lookup_elem(&seen, &key))
			return;
		bpf_map_update_elem(&seen, &key, &one, BPF_ANY);
	}
	bpfbox_emit(e, sizeof(*e));
}

SEC("tp/capability/cap_capable")
int cap_capable(struct trace_event_raw_cap_capable *ctx)
{
	struct capable_event e = {};

	if (begin_check(ctx, &e, ctx->cred, ctx->target_ns, ctx->cap, 0))
		finish_check(&e, ctx->ret);
	return 0;
}

SEC("fexit/cap_capable")
int BPF_PROG(cap_capable_fexit, const struct cred *cred, struct user_namespace *ns, int cap,
	     unsigned int opts, int ret)
{
	struct capable_event e = {};

	if (begin_check(ctx, &e, cred, ns, cap, opts))
		finish_check(&e, ret);
	return 0;
}

SEC("kprobe/cap_capable")
int BPF_KPROBE(cap_capable_entry, const struct cred *cred, struct user_namespace *ns, int cap,
	       unsigned int opts)
{
	struct capable_event e = {};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (begin_check(ctx, &e, cred, ns, cap, opts))
		bpf_map_update_elem(&inflight, &tid, &e, BPF_ANY);
	return 0;
}

SEC("kretprobe/cap_capable")
int BPF_KRETPROBE(cap_capable_return, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct capable_event *e = bpf_map_lookup_elem(&inflight, &tid);

	if (!e)
		return 0;
	finish_check(e, ret);
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}
