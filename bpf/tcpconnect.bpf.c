// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpconnect: active TCP connects, from sock/inet_sock_set_state.
 *
 * CLOSE -> SYN_SENT      runs in the connecting task: filter it, remember who and where.
 * SYN_SENT -> ESTABLISHED the outcome (may run in softirq): the source port is known now.
 * SYN_SENT -> CLOSE       refused, timed out, reset or closed, from sk_err.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "tcpconnect.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET_VALUE 2
#define AF_INET6_VALUE 10
#define IPPROTO_TCP_VALUE 6
#define ECONNREFUSED_VALUE 111
#define ETIMEDOUT_VALUE 110

const volatile struct tcpconnect_config tcpconnect_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);            /* the socket's address */
	__type(value, struct tcpconnect_event);
} attempts SEC(".maps");

static __always_inline bool port_selected(__u16 dport)
{
	__u32 i;

	if (!tcpconnect_cfg.nports)
		return true;
	for (i = 0; i < TCPCONNECT_MAX_PORTS; i++) {
		if (i >= tcpconnect_cfg.nports)
			break;
		if (tcpconnect_cfg.ports[i] == dport)
			return true;
	}
	return false;
}

static __always_inline void copy_addresses(struct tcpconnect_event *e,
					   struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (e->family == AF_INET_VALUE) {
		bpf_probe_read_kernel(e->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(e->daddr, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(e->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(e->daddr, 16, ctx->daddr_v6);
	}
}

SEC("tp/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	struct tcpconnect_event *e;
	int oldstate, newstate;
	__u16 family;

	if (ctx->protocol != IPPROTO_TCP_VALUE)
		return 0;
	oldstate = ctx->oldstate;
	newstate = ctx->newstate;
	family = ctx->family;

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		struct tcpconnect_event attempt = {};
		__u16 shown = family;

		if (!port_selected(ctx->dport))
			return 0;
		attempt.family = family;
		copy_addresses(&attempt, ctx);
		/* -4/-6 select what is shown: a v4-mapped peer is IPv4. */
		if (family == AF_INET6_VALUE && bpfbox_v4_mapped(attempt.daddr))
			shown = AF_INET_VALUE;
		if (tcpconnect_cfg.family && shown != tcpconnect_cfg.family)
			return 0;
		if (!bpfbox_filter_task())
			return 0;
		bpfbox_fill_task(&attempt.task);
		attempt.dport = ctx->dport;
		if (bpf_map_update_elem(&attempts, &sk, &attempt, BPF_ANY))
			bpfbox_count_lost(); /* too many connects in flight */
		return 0;
	}
	/* A simultaneous open goes SYN_SENT -> SYN_RECV -> ESTABLISHED. */
	if (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV)
		return 0;

	e = bpf_map_lookup_elem(&attempts, &sk);
	if (!e || newstate == TCP_SYN_RECV)
		return 0;
	e->latency_ns = bpf_ktime_get_ns() - e->task.ts_ns;
	e->sport = ctx->sport;
	copy_addresses(e, ctx);
	if (newstate == TCP_ESTABLISHED) {
		e->outcome = TCPCONNECT_ESTABLISHED;
		e->error = 0;
	} else {
		struct sock *s = (struct sock *)ctx->skaddr;
		int err = BPF_CORE_READ(s, sk_err);

		e->error = err;
		e->outcome = err == ECONNREFUSED_VALUE ? TCPCONNECT_REFUSED
			   : err == ETIMEDOUT_VALUE   ? TCPCONNECT_TIMED_OUT
			   : err                      ? TCPCONNECT_RESET
						      : TCPCONNECT_CLOSED;
	}
	bpfbox_emit(e, sizeof(*e));
	bpf_map_delete_elem(&attempts, &sk);
	return 0;
}
