#!/bin/sh
# Regenerates bpf/<arch>/vmlinux.h from the running kernel's BTF.
# Context structs get preserve_static_offset so that clang keeps their accesses
# as plain loads at constant offsets (the verifier rejects rewritten ctx accesses).
set -eu
arch=${1:-x86}
btf=${BTF:-/sys/kernel/btf/vmlinux}
out="$(dirname "$0")/../bpf/$arch/vmlinux.h"
mkdir -p "$(dirname "$out")"
command -v bpftool >/dev/null || { echo "gen-vmlinux: bpftool not found (apt-get install bpftool)" >&2; exit 1; }
bpftool btf dump file "$btf" format c |
  sed -E 's/^struct (bpf_sock_ops|sk_msg_md|__sk_buff|bpf_sock_addr|bpf_sock|bpf_sockopt|bpf_sysctl|sk_reuseport_md|xdp_md|bpf_perf_event_data|trace_event_raw_[A-Za-z0-9_]+) \{/struct __attribute__((preserve_static_offset)) \1 {/' \
  > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -l < "$out") lines)"
