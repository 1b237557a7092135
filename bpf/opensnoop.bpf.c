// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * opensnoop: traces open(2), openat(2), openat2(2) and creat(2) through their syscall
 * tracepoints. The entry remembers the arguments of a selected task; the exit reads the path
 * (the kernel has just read it, so the page is present) and sends the event. With -F a relative
 * path gets the names of its directory (the dirfd's, or the cwd's), walked up in the kernel.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "opensnoop.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AT_FDCWD_VALUE -100
#define O_ACCMODE_VALUE 3

const volatile struct opensnoop_config opensnoop_cfg = {};

struct open_args {
	const char *path;
	__u64 flags;
	__u64 mode;
	__u64 resolve;
	__s32 dfd;
	__u32 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct open_args);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct opensnoop_event);
} scratch SEC(".maps");

static __always_inline bool flags_selected(__u64 flags)
{
	__u32 i;

	if (!opensnoop_cfg.accmodes && !opensnoop_cfg.nflags)
		return true;
	if (opensnoop_cfg.accmodes & (1 << (flags & O_ACCMODE_VALUE)))
		return true;
	for (i = 0; i < OPENSNOOP_FLAG_FILTERS; i++) {
		__u64 want;

		if (i >= opensnoop_cfg.nflags)
			break;
		want = opensnoop_cfg.flag_values[i];
		if (want && (flags & want) == want)
			return true;
	}
	return false;
}

/* -n: whether the current comm contains the configured name. */
static __always_inline bool name_selected(void)
{
	char comm[BPFBOX_COMM_LEN] = {};
	__u32 len = opensnoop_cfg.name_len, i, j;

	if (!len)
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	for (i = 0; i < BPFBOX_COMM_LEN; i++) {
		if (i + len > BPFBOX_COMM_LEN - 1)
			break;
		for (j = 0; j < BPFBOX_COMM_LEN; j++) {
			if (j >= len)
				return true;
			if (comm[(i + j) & (BPFBOX_COMM_LEN - 1)] != opensnoop_cfg.name[j])
				break;
		}
	}
	return false;
}

static __always_inline int enter_open(__s32 dfd, const char *path, __u64 flags, __u64 mode,
				      __u64 resolve, __u32 syscall)
{
	struct open_args args = {};
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if (!bpfbox_filter_task())
		return 0;
	if (opensnoop_cfg.by_tid && tid != opensnoop_cfg.tid)
		return 0;
	if (!flags_selected(flags) || !name_selected())
		return 0;
	args.path = path;
	args.flags = flags;
	args.mode = mode;
	args.resolve = resolve;
	args.dfd = dfd;
	args.syscall = syscall;
	bpf_map_update_elem(&starts, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_enter_open")
int sys_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return enter_open(AT_FDCWD_VALUE, (const char *)ctx->args[0], ctx->args[1], ctx->args[2], 0,
			  OPENSNOOP_OPEN);
}

SEC("tp/syscalls/sys_enter_creat")
int sys_enter_creat(struct trace_event_raw_sys_enter *ctx)
{
	/* creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode). */
	return enter_open(AT_FDCWD_VALUE, (const char *)ctx->args[0], 01101, ctx->args[1], 0,
			  OPENSNOOP_CREAT);
}

SEC("tp/syscalls/sys_enter_openat")
int sys_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return enter_open((__s32)ctx->args[0], (const char *)ctx->args[1], ctx->args[2], ctx->args[3], 0,
			  OPENSNOOP_OPENAT);
}

SEC("tp/syscalls/sys_enter_openat2")
int sys_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return enter_open((__s32)ctx->args[0], (const char *)ctx->args[1], how.flags, how.mode, how.resolve,
			  OPENSNOOP_OPENAT2);
}

/* The directory a relative path starts from: the dirfd's file, or the cwd. */
static __always_inline bool start_dir(__s32 dfd, struct dentry **dentry, struct vfsmount **vfsmnt)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	if (dfd == AT_FDCWD_VALUE) {
		*dentry = BPF_CORE_READ(task, fs, pwd.dentry);
		*vfsmnt = BPF_CORE_READ(task, fs, pwd.mnt);
	} else {
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		struct file **fds = BPF_CORE_READ(fdt, fd);
		struct file *file = NULL;

		if (dfd < 0 || (__u32)dfd >= BPF_CORE_READ(fdt, max_fds))
			return false;
		if (bpf_probe_read_kernel(&file, sizeof(file), &fds[dfd]) || !file)
			return false;
		*dentry = BPF_CORE_READ(file, f_path.dentry);
		*vfsmnt = BPF_CORE_READ(file, f_path.mnt);
	}
	return *dentry && *vfsmnt;
}

/*
 * Names the directories from the start directory up to the root, leaf first, one slot per step
 * after the path area; returns the bytes of slots used. Every step writes its own slot (empty
 * when it crossed a mount point), so the loop carries nothing that differs between branches and
 * the verifier's work stays linear.
 */
static __always_inline __u32 walk_dir(struct opensnoop_event *e)
{
	struct dentry *dentry, *parent;
	struct vfsmount *vfsmnt;
	struct mount *mnt, *mnt_parent;
	int i;

	if (!start_dir(e->dfd, &dentry, &vfsmnt))
		return 0;
	mnt = (struct mount *)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
	for (i = 0; i < OPENSNOOP_DIR_STEPS; i++) {
		char *slot = &e->data[OPENSNOOP_PATH_MAX + i * OPENSNOOP_NAME_MAX];
		const unsigned char *name;

		if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (mnt_parent == mnt)
				goto root;
			slot[0] = '\0';
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = (struct vfsmount *)((void *)mnt + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		parent = BPF_CORE_READ(dentry, d_parent);
		if (parent == dentry)
			goto root;
		name = BPF_CORE_READ(dentry, d_name.name);
		if (bpf_probe_read_kernel_str(slot, OPENSNOOP_NAME_MAX, name) <= 0)
			slot[0] = '\0';
		dentry = parent;
	}
	e->event_flags |= OPENSNOOP_F_DIR_TRUNCATED;
	return OPENSNOOP_DIR_MAX;
root:
	e->event_flags |= OPENSNOOP_F_DIR_ABSOLUTE;
	return i * OPENSNOOP_NAME_MAX;
}

static __always_inline int exit_open(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0, size;
	struct opensnoop_event *e;
	struct open_args *args;
	long n;

	args = bpf_map_lookup_elem(&starts, &tid);
	if (!args)
		return 0;
	if (opensnoop_cfg.failed_only && ret >= 0)
		goto out;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		goto out;

	bpfbox_fill_task(&e->task);
	e->ret = ret;
	e->flags = args->flags;
	e->mode = args->mode;
	e->resolve = args->resolve;
	e->dfd = args->dfd;
	e->syscall = args->syscall;
	e->event_flags = 0;
	e->dir_size = 0;
	e->pad = 0;
	n = bpf_probe_read_user_str(e->data, OPENSNOOP_PATH_MAX, args->path);
	if (n <= 0) {
		e->data[0] = '\0';
		n = 1;
	}
	e->path_size = n;
	size = e->path_size;
	if (opensnoop_cfg.full_path && e->data[0] != '/') {
		e->dir_size = walk_dir(e);
		if (e->dir_size || (e->event_flags & OPENSNOOP_F_DIR_ABSOLUTE))
			size = OPENSNOOP_PATH_MAX + e->dir_size;
	}
	if (size > sizeof(e->data))
		size = sizeof(e->data);
	bpfbox_emit(e, offsetof(struct opensnoop_event, data) + size);
out:
	bpf_map_delete_elem(&starts, &tid);
	return 0;
}

SEC("tp/syscalls/sys_exit_open")
int sys_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}

SEC("tp/syscalls/sys_exit_creat")
int sys_exit_creat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}

SEC("tp/syscalls/sys_exit_openat")
int sys_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}

SEC("tp/syscalls/sys_exit_openat2")
int sys_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}
