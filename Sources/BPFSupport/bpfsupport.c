#include "bpfsupport.h"

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KEPT_LOG 8192

static int log_verbose;
static char kept[KEPT_LOG];
static size_t kept_len;

static int print_fn(enum libbpf_print_level level, const char *format, va_list args)
{
	char line[1024];
	int n;

	if (log_verbose)
		return vfprintf(stderr, format, args);
	if (level == LIBBPF_DEBUG)
		return 0;
	n = vsnprintf(line, sizeof(line), format, args);
	if (n <= 0)
		return 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (kept_len + n >= KEPT_LOG)
		kept_len = 0; /* keep the newest lines */
	memcpy(kept + kept_len, line, n);
	kept_len += n;
	kept[kept_len] = '\0';
	return 0;
}

void bpfsupport_set_log(int verbose)
{
	log_verbose = verbose;
	libbpf_set_print(print_fn);
}

const char *bpfsupport_take_log(void)
{
	static char out[KEPT_LOG];

	memcpy(out, kept, kept_len + 1 > KEPT_LOG ? KEPT_LOG : kept_len + 1);
	out[kept_len < KEPT_LOG ? kept_len : KEPT_LOG - 1] = '\0';
	kept_len = 0;
	kept[0] = '\0';
	return out;
}
