/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmap: data shared by the BPF side and the Swift side. */
#ifndef BPFBOX_SOCKMAP_H
#define BPFBOX_SOCKMAP_H

/*
 * A TCP socket of the SOCKHASH, by its 4-tuple as seen from the socket. v4-mapped IPv6
 * addresses are stored as IPv4 (family AF_INET, address in ip[0]) so that the two ends of a
 * connection made between a dual-stack listener and an IPv4 client find each other.
 */
struct sockmap_key {
	__u32 family;      /* AF_INET or AF_INET6 */
	__u32 local_port;  /* host order */
	__u32 remote_port; /* host order */
	__u32 local_ip[4]; /* network order; IPv4 in [0] */
	__u32 remote_ip[4];
};

/* Counters, one slot each in a per-CPU array. */
enum sockmap_stat {
	SOCKMAP_SOCKETS_ADDED,    /* established sockets put in the map */
	SOCKMAP_SOCKETS_REFUSED,  /* established sockets the map did not take (full, or an error) */
	SOCKMAP_MSGS_REDIRECTED,  /* sk_msg verdicts that spliced to the peer socket */
	SOCKMAP_BYTES_REDIRECTED, /* bytes those verdicts covered */
	SOCKMAP_MSGS_PASSED,      /* verdicts that let the data take the TCP path (peer not in map) */
	SOCKMAP_BYTES_PASSED,
	SOCKMAP_STAT_COUNT,
};

/* Why a connection is not accelerated (events, with --verbose). */
enum sockmap_reason {
	SOCKMAP_ADDED = 1,        /* in the map; spliced once its peer is too */
	SOCKMAP_ADD_FAILED,       /* the map refused it (error in `error`) */
	SOCKMAP_PEER_MISSING,     /* its first message found no peer in the map: the peer is remote,
	                             outside the cgroup, or connected before sockmap started */
};

struct sockmap_event {
	struct sockmap_key key;
	__u32 reason;             /* enum sockmap_reason */
	__s32 error;
	__u64 ts_ns;
	__u64 cgroup_id;          /* of the socket, where known (0 otherwise) */
};

#endif
