/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcptop: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_TCPTOP_H
#define BPFBOX_TCPTOP_H

#include "common.h"

struct tcptop_config {
	__u16 family;           /* -4/-6: AF_INET or AF_INET6; 0 = both */
	__u8 recvmsg_nonblock;  /* tcp_recvmsg has the nonblock argument (before 5.19) */
	__u8 pad[5];
};

/* One connection of one process. */
struct tcptop_key {
	__u8 saddr[16];         /* local address; IPv4 in the first 4 bytes */
	__u8 daddr[16];         /* remote address */
	__u32 pid;
	__u16 family;
	__u16 lport;            /* host order */
	__u16 dport;            /* host order */
	__u16 pad;
	__u64 cgroup_id;
};

struct tcptop_value {
	__u64 sent;             /* bytes the process handed to TCP (send calls' return values) */
	__u64 received;         /* bytes the process read (recv calls' return values, no peeks) */
	char comm[BPFBOX_COMM_LEN];
};

#endif
