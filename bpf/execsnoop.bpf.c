// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execsnoop: traces execve(2) and execveat(2).
 *
 * sys_enter_execve(at)   filter the task, remember pid/ppid/uid/ids in `inflight`;
 *                        with include_failed, also read filename and argv from user memory
 *                        (the only copy a failed exec has; it may come back empty when the
 *                        page is not faulted in yet).
 * sched_process_exec     the exec succeeded: take the filename from the binprm and argv from
 *                        the new mm (arg_start..arg_end, just written by the kernel), which is
 *                        complete even for a fresh child exec'ing a string literal. A BTF
 *                        tracepoint, for the binprm: it tells a script (#!) from a binary.
 * sys_exit_execve(at)    set the return value and comm, send header + used bytes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "execsnoop.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct execsnoop_config execsnoop_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct execsnoop_event);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct execsnoop_event);
} scratch SEC(".maps");

static __always_inline void read_entry_args(struct execsnoop_event *e, const char *filename,
					    const char *const *argv)
{
	long n = bpf_probe_read_user_str(e->args, EXECSNOOP_PATH_MAX, filename);
	__u32 pos;
	int i;

	if (n <= 0) {
		e->args[0] = '\0';
		n = 1;
	}
	pos = n;
	e->filename_size = pos;
	for (i = 0; i < EXECSNOOP_ENTER_ARGS; i++) {
		const char *arg = NULL;

		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		if (pos > EXECSNOOP_ARGS_SIZE - EXECSNOOP_ENTER_ARG_LEN) {
			e->flags |= EXECSNOOP_F_ARGV_TRUNCATED;
			break;
		}
		n = bpf_probe_read_user_str(&e->args[pos], EXECSNOOP_ENTER_ARG_LEN, arg);
		if (n <= 0)
			break;
		pos += n;
	}
	if (i == EXECSNOOP_ENTER_ARGS)
		e->flags |= EXECSNOOP_F_ARGV_TRUNCATED;
	e->args_size = pos;
}

static __always_inline int enter_exec(const char *filename, const char *const *argv, __u32 flags)
{
	struct task_struct *task;
	struct execsnoop_event *e;
	__u32 zero = 0, ppid;

	if (!bpfbox_filter_task())
		return 0;

	task = (struct task_struct *)bpf_get_current_task();
	ppid = BPF_CORE_READ(task, real_parent, tgid);
	if (execsnoop_cfg.by_ppid && ppid != execsnoop_cfg.ppid)
		return 0;

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;

	bpfbox_fill_task(&e->task);
	e->ppid = ppid;
	e->retval = 0;
	e->flags = flags;
	e->filename_size = 0;
	e->args_size = 0;
	if (execsnoop_cfg.include_failed) {
		e->flags |= EXECSNOOP_F_FROM_ENTRY;
		read_entry_args(e, filename, argv);
	}
	bpf_map_update_elem(&inflight, &e->task.tid, e, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_enter_execve")
int sys_enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	return enter_exec((const char *)ctx->args[0], (const char *const *)ctx->args[1], 0);
}

SEC("tp/syscalls/sys_enter_execveat")
int sys_enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return enter_exec((const char *)ctx->args[1], (const char *const *)ctx->args[2],
			  EXECSNOOP_F_EXECVEAT);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 old_tid = old_pid, tid = BPF_CORE_READ(p, pid);
	const char *filename;
	__u64 pos, len;
	struct execsnoop_event *e;
	struct task_struct *task;
	unsigned long arg_start, arg_end;
	long n;

	e = bpf_map_lookup_elem(&inflight, &old_tid);
	if (!e)
		return 0;
	if (old_tid != tid) {
		/* A non-leader thread exec'd and took over the leader's pid. */
		bpf_map_update_elem(&inflight, &tid, e, BPF_ANY);
		bpf_map_delete_elem(&inflight, &old_tid);
		e = bpf_map_lookup_elem(&inflight, &tid);
		if (!e)
			return 0;
	}

	filename = BPF_CORE_READ(bprm, filename);
	n = bpf_probe_read_kernel_str(e->args, EXECSNOOP_PATH_MAX, filename);
	if (n <= 0) {
		e->args[0] = '\0';
		n = 1;
	}
	pos = n;
	if (pos > EXECSNOOP_PATH_MAX)
		pos = EXECSNOOP_PATH_MAX;
	e->filename_size = pos;
	e->flags &= ~(EXECSNOOP_F_FROM_ENTRY | EXECSNOOP_F_ARGV_TRUNCATED);
	if (BPF_CORE_READ(bprm, interp) != filename)
		e->flags |= EXECSNOOP_F_SCRIPT;

	task = (struct task_struct *)bpf_get_current_task();
	arg_start = BPF_CORE_READ(task, mm, arg_start);
	arg_end = BPF_CORE_READ(task, mm, arg_end);
	len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (len > EXECSNOOP_ARGV_MAX) {
		len = EXECSNOOP_ARGV_MAX;
		e->flags |= EXECSNOOP_F_ARGV_TRUNCATED;
	}
	/* Keep the clamped values in the registers the verifier checks. */
	barrier_var(pos);
	barrier_var(len);
	if (pos > EXECSNOOP_PATH_MAX || len > EXECSNOOP_ARGV_MAX)
		return 0;
	if (len && bpf_probe_read_user(&e->args[pos], len, (void *)arg_start))
		len = 0;
	e->args_size = pos + len;
	return 0;
}

static __always_inline int exit_exec(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct execsnoop_event *e;
	__u32 size;

	e = bpf_map_lookup_elem(&inflight, &tid);
	if (!e)
		return 0;
	if (ret < 0 && !execsnoop_cfg.include_failed)
		goto out;

	e->retval = ret;
	e->task.pid = bpf_get_current_pid_tgid() >> 32;
	e->task.tid = tid;
	e->task.ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(e->task.comm, sizeof(e->task.comm));
	size = e->args_size;
	if (size > EXECSNOOP_ARGS_SIZE)
		size = EXECSNOOP_ARGS_SIZE;
	bpfbox_emit(e, offsetof(struct execsnoop_event, args) + size);
out:
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

SEC("tp/syscalls/sys_exit_execve")
int sys_exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx->ret);
}

SEC("tp/syscalls/sys_exit_execveat")
int sys_exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx->ret);
}
