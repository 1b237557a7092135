// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loader: the smallest C + libbpf tool that runs a bpfbox tracing object, the reference the
 * benchmarks in bench/ compare bpfbox against (start to first event, memory, kernel-side cost,
 * events per second without loss).
 *
 *   loader [-q] [-g PIN] [-M MAP=PIN]... OBJECT.bpf.o
 *
 * Opens the object (read from disk here; bpfbox embeds the same bytes), leaves .rodata at zero
 * (bpfbox's default configuration: no filter, trace everything), loads it, attaches every
 * program it keeps, prints a header line (flushed), then prints one line per event of the ring
 * buffer map named "events" ("PID COMM SIZE"; every bpfbox event starts with struct
 * bpfbox_task) until SIGINT or SIGTERM, and exits 0. An object without an "events" ring buffer
 * (bench/ref/cgroup_lookup.bpf.o) is attached and left running until the signal.
 *
 * Programs not loaded, as bpfbox decides at load time:
 *   - bpfbox_follow_* (the --exec process-tree hooks, off by default);
 *   - tp/CATEGORY/NAME whose tracepoint this kernel does not have (opensnoop's open and creat
 *     on arm64);
 *   - kprobe/kretprobe/fentry/fexit programs when the object has a tracepoint program too (they
 *     are the fallbacks for kernels without the tracepoint).
 *
 *   -q        no line per event (the events are still consumed and counted)
 *   -M MAP=PIN  use the map pinned at PIN for MAP (bpf_map__reuse_fd)
 *   -g PIN    bpfbox's --cgroupmap PIN: -M cgroup_filter=PIN, and by_cgroup set in the object's
 *             bpfbox_filter_cfg (.rodata), so that only tasks of the cgroups in PIN are traced
 *
 * At exit it writes "loader: N events, L lost" to stderr (L: the object's lost_events counter,
 * when it has one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "../../bpf/common.h"
#include "../../bpf/filter.h"

#define MAX_LINKS 64
#define MAX_REUSE 8

static volatile sig_atomic_t stop;
static unsigned long long events;
static int quiet_events;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int on_event(void *ctx, void *data, size_t size)
{
	const struct bpfbox_task *t = data;
	char comm[BPFBOX_COMM_LEN + 1];

	(void)ctx;
	events++;
	if (quiet_events)
		return 0;
	if (size < sizeof(*t)) {
		printf("? ? %zu\n", size);
		return 0;
	}
	memcpy(comm, t->comm, BPFBOX_COMM_LEN);
	comm[BPFBOX_COMM_LEN] = '\0';
	printf("%u %s %zu\n", t->pid, comm, size);
	return 0;
}

static int print_warnings(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, args);
	return 0;
}

static int has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* tp/CAT/NAME or tracepoint/CAT/NAME: does tracefs list it? Other sections: yes. */
static int tracepoint_exists(const char *sec)
{
	const char *rest = NULL;
	char path[512];

	if (has_prefix(sec, "tp/"))
		rest = sec + 3;
	else if (has_prefix(sec, "tracepoint/"))
		rest = sec + 11;
	if (!rest)
		return 1;
	snprintf(path, sizeof(path), "/sys/kernel/tracing/events/%s", rest);
	if (access(path, F_OK) == 0)
		return 1;
	snprintf(path, sizeof(path), "/sys/kernel/debug/tracing/events/%s", rest);
	return access(path, F_OK) == 0;
}

static int is_fallback(const char *sec)
{
	static const char *const kinds[] = { "kprobe/", "kretprobe/", "fentry/", "fexit/", "fmod_ret/" };
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (has_prefix(sec, kinds[i]))
			return 1;
	return 0;
}

static int is_tracepoint(const char *sec)
{
	return has_prefix(sec, "tp/") || has_prefix(sec, "tracepoint/") || has_prefix(sec, "raw_tp/") ||
	       has_prefix(sec, "tp_btf/");
}

/* Sets bpfbox_filter_cfg.by_cgroup in .rodata before load; 0, or -1 when the object has none. */
static int set_by_cgroup(struct bpf_object *obj)
{
	struct bpf_map *rodata = bpf_object__find_map_by_name(obj, ".rodata");
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vsi;
	const struct btf_type *sec;
	size_t size;
	char *data;
	int id, i;

	if (!rodata || !btf)
		return -1;
	data = (char *)bpf_map__initial_value(rodata, &size); /* writable until load */
	id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (!data || id < 0)
		return -1;
	sec = btf__type_by_id(btf, id);
	vsi = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vsi++) {
		const struct btf_type *var = btf__type_by_id(btf, vsi->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), "bpfbox_filter_cfg") == 0 &&
		    vsi->offset + sizeof(struct bpfbox_filter_config) <= size) {
			((struct bpfbox_filter_config *)(data + vsi->offset))->by_cgroup = 1;
			return 0;
		}
	}
	return -1;
}

static unsigned long long read_lost(struct bpf_object *obj)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "lost_events");
	unsigned long long total = 0, *values;
	__u32 zero = 0;
	int ncpu, i;

	if (!map)
		return 0;
	if (bpf_map__type(map) == BPF_MAP_TYPE_PERCPU_ARRAY) {
		ncpu = libbpf_num_possible_cpus();
		if (ncpu <= 0)
			return 0;
		values = calloc((size_t)ncpu, sizeof(*values));
		if (!values)
			return 0;
		if (bpf_map_lookup_elem(bpf_map__fd(map), &zero, values) == 0)
			for (i = 0; i < ncpu; i++)
				total += values[i];
		free(values);
		return total;
	}
	if (bpf_map_lookup_elem(bpf_map__fd(map), &zero, &total) != 0)
		return 0;
	return total;
}

int main(int argc, char **argv)
{
	struct bpf_link *links[MAX_LINKS];
	char *reuse[MAX_REUSE];
	int nreuse = 0;
	struct ring_buffer *rb = NULL;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *events_map;
	struct sigaction sa;
	int nlinks = 0, err = 0, i, opt, has_tp = 0;
	char *cgroupmap = NULL;

	while ((opt = getopt(argc, argv, "qM:g:")) != -1) {
		switch (opt) {
		case 'q':
			quiet_events = 1;
			break;
		case 'M':
			if (nreuse == MAX_REUSE || !strchr(optarg, '=')) {
				fprintf(stderr, "loader: -M MAP=PIN (at most %d)\n", MAX_REUSE);
				return 2;
			}
			reuse[nreuse++] = optarg;
			break;
		case 'g':
			if (nreuse == MAX_REUSE || asprintf(&cgroupmap, "cgroup_filter=%s", optarg) < 0)
				return 2;
			reuse[nreuse++] = cgroupmap;
			break;
		default:
			fprintf(stderr, "usage: %s [-q] [-g PIN] [-M MAP=PIN]... OBJECT.bpf.o\n", argv[0]);
			return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: %s [-q] [-g PIN] [-M MAP=PIN]... OBJECT.bpf.o\n", argv[0]);
		return 2;
	}
	libbpf_set_print(print_warnings);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	obj = bpf_object__open_file(argv[optind], NULL);
	if (!obj) {
		err = -errno;
		fprintf(stderr, "loader: open %s: %s\n", argv[optind], strerror(-err));
		return 1;
	}
	for (i = 0; i < nreuse; i++) {
		char *eq = strchr(reuse[i], '=');
		struct bpf_map *map;
		int fd;

		*eq = '\0';
		map = bpf_object__find_map_by_name(obj, reuse[i]);
		fd = bpf_obj_get(eq + 1);
		if (!map || fd < 0 || bpf_map__reuse_fd(map, fd) != 0) {
			fprintf(stderr, "loader: -M %s=%s: no such map, or the pin cannot be used\n", reuse[i], eq + 1);
			err = -EINVAL;
			goto out;
		}
		close(fd);
	}

	if (cgroupmap && set_by_cgroup(obj) != 0) {
		fprintf(stderr, "loader: -g: the object has no bpfbox_filter_cfg in .rodata\n");
		err = -EINVAL;
		goto out;
	}

	/* Which programs bpfbox would load by default on this kernel. */
	bpf_object__for_each_program(prog, obj) {
		const char *sec = bpf_program__section_name(prog);

		if (has_prefix(bpf_program__name(prog), "bpfbox_follow_") || !tracepoint_exists(sec))
			bpf_program__set_autoload(prog, false);
		else if (is_tracepoint(sec))
			has_tp = 1;
	}
	bpf_object__for_each_program(prog, obj) {
		if (has_tp && is_fallback(bpf_program__section_name(prog)))
			bpf_program__set_autoload(prog, false);
	}

	err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "loader: load: %s\n", strerror(-err));
		goto out;
	}
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__autoload(prog))
			continue;
		if (nlinks == MAX_LINKS) {
			fprintf(stderr, "loader: too many programs\n");
			err = -E2BIG;
			goto out;
		}
		links[nlinks] = bpf_program__attach(prog);
		if (!links[nlinks]) {
			err = -errno;
			fprintf(stderr, "loader: attach %s: %s\n", bpf_program__name(prog), strerror(-err));
			goto out;
		}
		nlinks++;
	}

	events_map = bpf_object__find_map_by_name(obj, "events");
	if (events_map && bpf_map__type(events_map) == BPF_MAP_TYPE_RINGBUF) {
		rb = ring_buffer__new(bpf_map__fd(events_map), on_event, NULL, NULL);
		if (!rb) {
			err = -errno;
			fprintf(stderr, "loader: ring_buffer__new: %s\n", strerror(-err));
			goto out;
		}
	}
	/* Attached: bpfbox prints its header at this point too. */
	printf("PID COMM SIZE (loader: %d programs attached)\n", nlinks);
	fflush(stdout);

	while (!stop) {
		if (!rb) {
			sleep(1); /* a signal ends it early */
			continue;
		}
		err = ring_buffer__poll(rb, 100);
		if (err == -EINTR) {
			err = 0;
			continue;
		}
		if (err < 0) {
			fprintf(stderr, "loader: ring_buffer__poll: %s\n", strerror(-err));
			break;
		}
		err = 0;
		fflush(stdout);
	}
	if (rb)
		ring_buffer__consume(rb);
	fflush(stdout);
	fprintf(stderr, "loader: %llu events, %llu lost\n", events, read_lost(obj));

out:
	ring_buffer__free(rb);
	for (i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	bpf_object__close(obj);
	free(cgroupmap);
	return err ? 1 : 0;
}
