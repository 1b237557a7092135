/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcpconnect: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_TCPCONNECT_H
#define BPFBOX_TCPCONNECT_H

#include "common.h"

#define TCPCONNECT_MAX_PORTS 16

enum tcpconnect_outcome {
	TCPCONNECT_ESTABLISHED = 0,
	TCPCONNECT_REFUSED = 1,     /* reset by the peer (ECONNREFUSED) */
	TCPCONNECT_TIMED_OUT = 2,   /* ETIMEDOUT */
	TCPCONNECT_RESET = 3,       /* another error; sk_err says which */
	TCPCONNECT_CLOSED = 4,      /* closed before an answer, without an error */
};

struct tcpconnect_config {
	__u16 ports[TCPCONNECT_MAX_PORTS]; /* -P: destination ports (host order) */
	__u32 nports;
	__u16 family;                      /* -4/-6: AF_INET or AF_INET6; 0 = both */
	__u16 pad;
};

struct tcpconnect_event {
	struct bpfbox_task task;   /* the connecting task, taken when the SYN was sent */
	__u64 latency_ns;          /* SYN sent to outcome */
	__u8 saddr[16];            /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 family;
	__u16 sport;               /* host order */
	__u16 dport;               /* host order */
	__u16 outcome;             /* enum tcpconnect_outcome */
	__s32 error;               /* sk_err when the attempt failed */
	__u32 pad;
};

#endif
