/* The C side of bpfbox's Swift code: libbpf's log callback, and the structs of the bpf headers. */
#ifndef BPFBOX_BPFSUPPORT_H
#define BPFBOX_BPFSUPPORT_H

#include <linux/types.h>
#include <stddef.h>
#include <sys/vfs.h>

#include "../../../bpf/common.h"
#include "../../../bpf/filter.h"
#include "../../../bpf/execsnoop.h"
#include "../../../bpf/opensnoop.h"
#include "../../../bpf/capable.h"
#include "../../../bpf/tcpconnect.h"
#include "../../../bpf/tcptop.h"
#include "../../../bpf/skbcount.h"
#include "../../../bpf/sockmap.h"

/* Routes libbpf's log: verbose != 0 prints every line to stderr; otherwise warnings are kept
 * (the last few KiB) so that an error can point at them with --verbose. */
void bpfsupport_set_log(int verbose);

/* The kept tail of libbpf's warnings since the last call; "" when none. Resets the buffer. */
const char *bpfsupport_take_log(void);

/* The content of /sys/kernel/security/lockdown into buf (NUL-terminated), read from securityfs
 * mounted by a child process in a private mount namespace, so that no mount is left behind.
 * Returns the length, or -1 when it cannot be read (no securityfs, no lockdown LSM, no rights). */
int bpfsupport_read_lockdown(char *buf, int len);

/* Returns the heap's free memory to the system (malloc_trim), after the transient work of a load. */
void bpfsupport_trim_heap(void);

#endif
