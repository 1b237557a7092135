/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by every bpfbox BPF program: the event ring and its loss counter. */
#ifndef BPFBOX_COMMON_BPF_H
#define BPFBOX_COMMON_BPF_H

#include <bpf/bpf_helpers.h>

/* Size is set by user space before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Events that did not fit in the ring; user space sums the CPUs and reports them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

static __always_inline void bpfbox_count_lost(void)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&lost_events, &zero);

	if (count)
		__sync_fetch_and_add(count, 1);
}

/* Copies size bytes at data into the ring; a full ring is counted, never silent. */
static __always_inline long bpfbox_emit(void *data, __u64 size)
{
	long err = bpf_ringbuf_output(&events, data, size, 0);

	if (err)
		bpfbox_count_lost();
	return err;
}

#endif
