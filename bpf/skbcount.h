/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* skbcount: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_SKBCOUNT_H
#define BPFBOX_SKBCOUNT_H

/* Per cgroup-v2 id of the sending or receiving socket. */
struct skbcount_value {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
};

#endif
