#!/usr/bin/env bash
# Clean build time and binary size: `swift build -c release` of the committed tree (git archive
# HEAD) in a fresh directory with its own scratch path, timed with /usr/bin/time; the size of the
# release binary as built and stripped; with STATIC=1 also scripts/release.sh run in that export
# (its stripped binary that needs only glibc, and its time). Nothing in the checkout is touched.
#
#   sudo bench/build.sh                       # several minutes
#   sudo STATIC=1 bench/build.sh              # twice as long
#
# Environment:
#   STATIC      set: also time scripts/release.sh and report the size of its dist/bpfbox
#   REV         the revision to export (default HEAD)
#   JSON        also write the figures to this file
#
# Package dependencies are resolved before the clock starts (from the SwiftPM cache when it has
# them; the checkout's Package.resolved is copied in so the same versions are built). The time
# is the whole build of a clean scratch path: BPF objects, dependencies, bpfbox.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init build.sh

REV=${REV:-HEAD}
rev=$(git rev-parse --short "$REV")
src=$work/src
mkdir -p "$src"
git archive "$REV" | tar -x -C "$src"
[[ -f Package.resolved ]] && cp Package.resolved "$src/"

bench_conditions
echo "export:  git archive $rev -> $src"
echo "swift:   $(swift --version 2>&1 | head -n 1)"

(cd "$src" && swift package resolve >"$work/resolve.log" 2>&1) || { tail -n 20 "$work/resolve.log" >&2; bench_die "swift package resolve failed"; }

# time_cmd NAME COMMAND...: runs COMMAND in the export; sets wall, user, sys, rss_kb.
time_cmd() {
    local name=$1
    shift
    echo "== $name: $*"
    if ! (cd "$src" && /usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1); then
        tail -n 20 "$work/$name.log" >&2
        bench_die "$name failed"
    fi
    read -r wall user sys rss_kb <"$work/$name.time"
    echo "$name: wall $wall s, user $user s, sys $sys s, peak RSS $((rss_kb / 1024)) MiB"
}

time_cmd build swift build -c release --scratch-path .build
build_wall=$wall build_user=$user build_sys=$sys
binary=$src/.build/release/bpfbox
size=$(stat -c %s "$binary")
cp "$binary" "$work/bpfbox.stripped"
strip "$work/bpfbox.stripped"
stripped=$(stat -c %s "$work/bpfbox.stripped")
echo "size:    release binary $size bytes, stripped $stripped bytes (dynamically linked: $(ldd "$binary" | wc -l) libraries)"

static_json=null
if [[ -n ${STATIC:-} ]]; then
    time_cmd release scripts/release.sh "$work/dist"
    static=$(stat -c %s "$work/dist/bpfbox")
    echo "size:    scripts/release.sh dist/bpfbox (stripped, static but for glibc) $static bytes"
    static_json="{\"wall_s\": $wall, \"user_s\": $user, \"sys_s\": $sys, \"bytes\": $static}"
fi

if [[ -n ${JSON:-} ]]; then
    cat >"$JSON" <<JSONEOF
{"rev": "$rev", "cpus": $(nproc), "load": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "clean_build": {"wall_s": $build_wall, "user_s": $build_user, "sys_s": $build_sys},
 "release_binary_bytes": $size, "release_binary_stripped_bytes": $stripped,
 "static_release": $static_json}
JSONEOF
fi
