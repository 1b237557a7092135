// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmap: splices local TCP connections socket to socket.
 *
 * A sock_ops program, attached to a cgroup, puts every TCP socket of that cgroup's subtree into
 * a SOCKHASH once it is established, keyed by its 4-tuple. An sk_msg program on the SOCKHASH
 * then sees each message a tracked socket sends: when the peer socket (the reversed 4-tuple) is
 * tracked too, the data goes straight into the peer's receive queue and never crosses the
 * loopback device; otherwise it takes the normal TCP path. A message is never dropped: the
 * verdict is always SK_PASS, and a failed redirect simply leaves the data on the TCP path.
 * Closed sockets leave the SOCKHASH by themselves.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "sockmap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

/*
 * Bytes a redirect verdict covers before the sk_msg program runs again for the socket. A
 * connection's peer never changes, so one verdict can serve many writes: running the program
 * for each one is what makes small streaming writes slower than plain loopback TCP.
 * Set before load; 0 runs the program for every write.
 */
const volatile __u32 apply_bytes = 0;
/* Emit an event per socket decision (--verbose). */
const volatile __u8 explain = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sockmap_key);
	__type(value, __u64);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SOCKMAP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Sockets whose missing peer was already explained, so that --verbose says it once. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sockmap_key);
	__type(value, __u8);
} explained SEC(".maps");

static __always_inline void count(enum sockmap_stat which, __u64 n)
{
	__u32 key = which;
	__u64 *value = bpf_map_lookup_elem(&stats, &key);

	if (value)
		*value += n; /* per CPU, and sk_msg/sock_ops do not nest on one CPU */
}

/* A context's IPv6 address, word by word: each context access at a constant offset. */
#define COPY_IP6(dst, src)                                                                         \
	do {                                                                                       \
		(dst)[0] = (src)[0];                                                               \
		(dst)[1] = (src)[1];                                                               \
		(dst)[2] = (src)[2];                                                               \
		(dst)[3] = (src)[3];                                                               \
	} while (0)

static __always_inline bool v4_mapped(const __u32 *ip6)
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0x0000ffff);
}

/*
 * Fills the key of a socket from its addresses (network order) and ports (host order). An
 * IPv6 socket whose two addresses are v4-mapped is keyed as IPv4.
 */
static __always_inline void make_key(struct sockmap_key *key, __u32 family, __u32 local4, __u32 remote4,
				     const __u32 *local6, const __u32 *remote6, __u32 local_port, __u32 remote_port)
{
	key->local_port = local_port;
	key->remote_port = remote_port;
	if (family == AF_INET6 && !(v4_mapped(local6) && v4_mapped(remote6))) {
		key->family = AF_INET6;
		__builtin_memcpy(key->local_ip, local6, 16);
		__builtin_memcpy(key->remote_ip, remote6, 16);
		return;
	}
	key->family = AF_INET;
	key->local_ip[0] = family == AF_INET6 ? local6[3] : local4;
	key->remote_ip[0] = family == AF_INET6 ? remote6[3] : remote4;
}

static __always_inline void emit(const struct sockmap_key *key, __u32 reason, __s32 error, __u64 cgroup_id)
{
	struct sockmap_event e = {};

	if (!explain)
		return;
	e.key = *key;
	e.reason = reason;
	e.error = error;
	e.ts_ns = bpf_ktime_get_ns();
	e.cgroup_id = cgroup_id;
	bpfbox_emit(&e, sizeof(e));
}

/* The cgroup-v2 id of a socket (its creator's cgroup; an accepted socket has its listener's). */
static __always_inline __u64 socket_cgroup_id(struct bpf_sock *sk)
{
	struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	return BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup, kn, id);
}

SEC("sockops")
int sockmap_track(struct bpf_sock_ops *skops)
{
	struct sockmap_key key = {};
	__u32 local6[4], remote6[4];
	__u64 cgroup_id = 0;
	__u32 family;
	long err;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	family = skops->family;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	if (bpfbox_filter_cfg.by_cgroup || explain)
		cgroup_id = socket_cgroup_id(skops->sk);
	/* --cgroupmap: attached at the root, only sockets of the listed cgroups are tracked. */
	if (bpfbox_filter_cfg.by_cgroup && !bpf_map_lookup_elem(&cgroup_filter, &cgroup_id))
		return 1;
	COPY_IP6(local6, skops->local_ip6);
	COPY_IP6(remote6, skops->remote_ip6);
	make_key(&key, family, skops->local_ip4, skops->remote_ip4, local6, remote6, skops->local_port,
		 bpf_ntohl(skops->remote_port));
	err = bpf_sock_hash_update(skops, &sockets, &key, BPF_ANY);
	if (err) {
		count(SOCKMAP_SOCKETS_REFUSED, 1);
		emit(&key, SOCKMAP_ADD_FAILED, err, cgroup_id);
		return 1;
	}
	count(SOCKMAP_SOCKETS_ADDED, 1);
	emit(&key, SOCKMAP_ADDED, 0, cgroup_id);
	return 1;
}

SEC("sk_msg")
int sockmap_redirect(struct sk_msg_md *msg)
{
	struct sockmap_key peer = {};
	__u32 local6[4], remote6[4];
	__u32 size = msg->size;
	__u8 one = 1;
	long verdict;

	/* The peer's key: this socket's tuple, reversed. */
	COPY_IP6(local6, msg->local_ip6);
	COPY_IP6(remote6, msg->remote_ip6);
	make_key(&peer, msg->family, msg->remote_ip4, msg->local_ip4, remote6, local6, bpf_ntohl(msg->remote_port),
		 msg->local_port);
	verdict = bpf_msg_redirect_hash(msg, &sockets, &peer, BPF_F_INGRESS);
	if (verdict == SK_PASS) {
		if (apply_bytes)
			bpf_msg_apply_bytes(msg, apply_bytes);
		count(SOCKMAP_MSGS_REDIRECTED, 1);
		count(SOCKMAP_BYTES_REDIRECTED, size);
		return SK_PASS;
	}
	count(SOCKMAP_MSGS_PASSED, 1);
	count(SOCKMAP_BYTES_PASSED, size);
	if (explain && !bpf_map_lookup_elem(&explained, &peer)) {
		bpf_map_update_elem(&explained, &peer, &one, BPF_ANY);
		emit(&peer, SOCKMAP_PEER_MISSING, 0, 0);
	}
	/* Never return the helper's SK_DROP: a message without a tracked peer goes the TCP way. */
	return SK_PASS;
}
