#!/bin/bash
# fuzz.sh: libFuzzer over the event decoders and the option parser (Tests/Fuzz/main.swift).
#
#   scripts/fuzz.sh [SECONDS]      # default 60 per run; corpus and findings in .build/fuzz/corpus
#
# The package's modules are built with AddressSanitizer and libFuzzer's coverage into their own
# scratch directory (.build/fuzz: the normal build is untouched), then the target is linked with
# `swiftc -sanitize=fuzzer,address` against their objects and run for SECONDS. A crash leaves
# crash-* in the corpus directory and makes the script fail; turn it into a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
SCRATCH=.build/fuzz
# The build-time tool (bpf-compile) is instrumented too: its leaks at exit do not matter.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
FLAGS=(-Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp -Xcc -fsanitize=address)
swift build --scratch-path "$SCRATCH" --product bpfbox "${FLAGS[@]}"
BIN=$(swift build --scratch-path "$SCRATCH" --show-bin-path "${FLAGS[@]}")
objects=()
for module in Applets ContainerFilter BPFKit BPFSupport BPFObjects; do
	while IFS= read -r object; do objects+=("$object"); done < <(find "$BIN/$module.build" -name '*.o')
done
swiftc -sanitize=fuzzer,address -parse-as-library -g \
	-I "$BIN/Modules" -I Sources/BPFSupport/include \
	-Xcc -fmodule-map-file=Sources/CLibbpf/module.modulemap \
	-Xcc -fmodule-map-file="$BIN/BPFSupport.build/module.modulemap" \
	Tests/Fuzz/main.swift "${objects[@]}" -lbpf -lelf -lz -o "$BIN/bpfbox-fuzz"
mkdir -p "$SCRATCH/corpus"
cd "$SCRATCH/corpus"
"../$(basename "$(dirname "$BIN")")/$(basename "$BIN")/bpfbox-fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=12288 -print_final_stats=1 . 
