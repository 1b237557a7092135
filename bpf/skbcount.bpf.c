// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skbcount: packets and bytes per cgroup, from cgroup_skb programs at INET_INGRESS and
 * INET_EGRESS. They run for the sockets of the cgroups they are attached to (and their
 * descendants); the count is kept per cgroup of the socket, which user space folds into the
 * selected cgroups. Every packet is let through: the programs only count.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "filter.bpf.h"
#include "skbcount.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct skbcount_value);
} counts SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, bool egress)
{
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct skbcount_value *value, zero = {};
	__u64 len = skb->len;

	/* --cgroupmap: the shared filter map, matched against the socket's cgroup. */
	if (bpfbox_filter_cfg.by_cgroup && !bpf_map_lookup_elem(&cgroup_filter, &cgroup_id))
		return 1;
	value = bpf_map_lookup_elem(&counts, &cgroup_id);
	if (!value) {
		bpf_map_update_elem(&counts, &cgroup_id, &zero, BPF_NOEXIST);
		value = bpf_map_lookup_elem(&counts, &cgroup_id);
		if (!value) {
			bpfbox_count_lost();
			return 1;
		}
	}
	if (egress) {
		__sync_fetch_and_add(&value->tx_packets, 1);
		__sync_fetch_and_add(&value->tx_bytes, len);
	} else {
		__sync_fetch_and_add(&value->rx_packets, 1);
		__sync_fetch_and_add(&value->rx_bytes, len);
	}
	return 1;
}

SEC("cgroup_skb/ingress")
int skb_ingress(struct __sk_buff *skb)
{
	return count(skb, false);
}

SEC("cgroup_skb/egress")
int skb_egress(struct __sk_buff *skb)
{
	return count(skb, true);
}

/*
 * --pin: a cgroup iterator pinned at DIR/stats, so that `cat DIR/stats` prints the live counters
 * with no process running: one line per cgroup that has traffic. Loaded only with --pin.
 */
SEC("iter/cgroup")
int skbcount_stats(struct bpf_iter__cgroup *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct cgroup *cgrp = ctx->cgroup;
	struct skbcount_value *value;
	const char *name;
	__u64 id;

	if (!cgrp)
		return 0;
	if (ctx->meta->seq_num == 0)
		BPF_SEQ_PRINTF(seq, "%-12s %10s %12s %10s %12s %s\n", "CGROUP_ID", "RX_PKTS", "RX_BYTES", "TX_PKTS",
			       "TX_BYTES", "NAME");
	id = BPF_CORE_READ(cgrp, kn, id);
	value = bpf_map_lookup_elem(&counts, &id);
	if (!value)
		return 0;
	name = BPF_CORE_READ(cgrp, kn, name);
	BPF_SEQ_PRINTF(seq, "%-12llu %10llu %12llu %10llu %12llu %s\n", id, value->rx_packets, value->rx_bytes,
		       value->tx_packets, value->tx_bytes, name);
	return 0;
}
