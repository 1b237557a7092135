// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcptop: bytes sent and received per TCP connection and process, from the return values of
 * the send and receive calls, in the calling process, so the counts are the bytes that process
 * really moved (peeks excluded). Summed in a hash map that user space reads and clears once per
 * interval. Each direction is hooked by the first of these the kernel offers (user space turns
 * the others off before load):
 *   tp/sock/sock_send_length, tp/sock/sock_recv_length       (6.12 has them, 6.1 not)
 *   fexit/tcp_sendmsg, fexit/tcp_recvmsg                     (tcp_recvmsg lost its nonblock
 *                                                            argument in 5.19: two programs)
 *   kprobe + kretprobe on tcp_sendmsg and tcp_recvmsg        (the socket kept per thread)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "tcptop.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET_VALUE 2
#define AF_INET6_VALUE 10
#define IPPROTO_TCP_VALUE 6
#define MSG_PEEK_VALUE 2

const volatile struct tcptop_config tcptop_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct tcptop_key);
	__type(value, struct tcptop_value);
} traffic SEC(".maps");

/* kprobe path: the socket of each thread's tcp_sendmsg or tcp_recvmsg (one at a time) until it
 * returns; a peek is not entered. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct sock *);
} calls SEC(".maps");

static __always_inline int count(struct sock *sk, __u16 family, __u16 protocol, int ret, bool sent)
{
	struct tcptop_key key = {};
	struct tcptop_value *value, zero = {};

	if (protocol != IPPROTO_TCP_VALUE || ret <= 0)
		return 0;
	if (family != AF_INET_VALUE && family != AF_INET6_VALUE)
		return 0;
	if (!bpfbox_filter_task())
		return 0;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.family = family;
	key.cgroup_id = bpf_get_current_cgroup_id();
	key.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	key.dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET_VALUE) {
		bpf_core_read(key.saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(key.daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(key.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(key.daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	/* -4/-6 select what is shown: a v4-mapped peer is IPv4. */
	if (tcptop_cfg.family) {
		__u16 shown = family == AF_INET6_VALUE && bpfbox_v4_mapped(key.daddr) ? AF_INET_VALUE : family;

		if (shown != tcptop_cfg.family)
			return 0;
	}

	value = bpf_map_lookup_elem(&traffic, &key);
	if (!value) {
		bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		bpf_map_update_elem(&traffic, &key, &zero, BPF_NOEXIST);
		value = bpf_map_lookup_elem(&traffic, &key);
		if (!value) {
			bpfbox_count_lost();
			return 0;
		}
	}
	if (sent)
		__sync_fetch_and_add(&value->sent, (__u64)ret);
	else
		__sync_fetch_and_add(&value->received, (__u64)ret);
	return 0;
}

SEC("tp/sock/sock_send_length")
int sock_send_length(struct trace_event_raw_sock_msg_length *ctx)
{
	return count(ctx->sk, ctx->family, ctx->protocol, ctx->ret, true);
}

SEC("tp/sock/sock_recv_length")
int sock_recv_length(struct trace_event_raw_sock_msg_length *ctx)
{
	if (ctx->flags & MSG_PEEK_VALUE)
		return 0;
	return count(ctx->sk, ctx->family, ctx->protocol, ctx->ret, false);
}

static __always_inline int count_tcp(struct sock *sk, int ret, bool sent)
{
	return count(sk, BPF_CORE_READ(sk, __sk_common.skc_family), IPPROTO_TCP_VALUE, ret, sent);
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(tcp_sendmsg_exit, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return count_tcp(sk, ret, true);
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(tcp_recvmsg_exit, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	if (flags & MSG_PEEK_VALUE)
		return 0;
	return count_tcp(sk, ret, false);
}

/* Before Linux 5.19: tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len). */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(tcp_recvmsg_exit_nonblock, struct sock *sk, struct msghdr *msg, size_t len,
	     int nonblock, int flags, int *addr_len, int ret)
{
	if (flags & MSG_PEEK_VALUE)
		return 0;
	return count_tcp(sk, ret, false);
}

static __always_inline int enter_call(struct sock *sk)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_update_elem(&calls, &tid, &sk, BPF_ANY);
	return 0;
}

static __always_inline int return_call(int ret, bool sent)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sock **sk = bpf_map_lookup_elem(&calls, &tid);

	if (!sk)
		return 0;
	count_tcp(*sk, ret, sent);
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(tcp_sendmsg_entry, struct sock *sk)
{
	return enter_call(sk);
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(tcp_sendmsg_return, int ret)
{
	return return_call(ret, true);
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(tcp_recvmsg_entry, struct sock *sk)
{
	/* flags is the 4th argument since 5.19, the 5th before: both registers are read, the
	 * constant picks one (a context offset chosen at run time would not verify). */
	int flags4 = (int)PT_REGS_PARM4(ctx), flags5 = (int)PT_REGS_PARM5(ctx);

	if ((tcptop_cfg.recvmsg_nonblock ? flags5 : flags4) & MSG_PEEK_VALUE)
		return 0;
	return enter_call(sk);
}

SEC("kretprobe/tcp_recvmsg")
int BPF_KRETPROBE(tcp_recvmsg_return, int ret)
{
	return return_call(ret, false);
}
