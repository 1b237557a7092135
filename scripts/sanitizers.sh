#!/bin/bash
# sanitizers.sh: the unit tests under AddressSanitizer and under ThreadSanitizer, each in its own
# scratch directory (.build/asan, .build/tsan: the normal build is untouched).
#
#   scripts/sanitizers.sh [address|thread ...]     # default: both
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for sanitizer in "${@:-address thread}"; do
	for s in $sanitizer; do
		scratch=.build/${s:0:1}san
		echo "== $s sanitizer ($scratch)"
		# The build-time tool (bpf-compile) is instrumented too: its leaks at exit do not matter.
		ASAN_OPTIONS=detect_leaks=0 swift build --build-tests --scratch-path "$scratch" --sanitize="$s"
		# XCTest's own objects (test cases, their names) are never freed: LeakSanitizer is told so,
		# and still reports any leak of the code under test.
		if LSAN_OPTIONS=suppressions=$PWD/scripts/lsan-xctest.supp swift test --skip-build --scratch-path "$scratch" --sanitize="$s" --disable-swift-testing --filter UnitTests; then
			echo "== $s sanitizer: unit tests pass"
		else
			echo "== $s sanitizer: FAILED"
			status=1
		fi
	done
done
exit $status
