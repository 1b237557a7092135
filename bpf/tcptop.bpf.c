// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcptop: bytes sent and received per TCP connection and process, from sock/sock_send_length
 * and sock/sock_recv_length. Both run in the calling process with the call's return value,
 * so the counts are the bytes that process really moved (peeks excluded). Summed in a hash map
 * that user space reads and clears once per interval.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
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
