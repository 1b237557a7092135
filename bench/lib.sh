# shellcheck shell=bash
# Shared preamble of the benchmark scripts in bench/ (sourced, never run):
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_init NAME                 # cd to the repository root, root check, $work (removed on exit)
#   bench_bpfbox                    # $bin: BPFBOX_BIN, or the release build in BPFBOX_SCRATCH
#   bench_object NAME.bpf.o         # prints the path of an object the build plugin linked
#   bench_mounts                    # tracefs and bpffs mounted; $bpffs and $cg2 set
#   bench_need_tool NAME [PACKAGE]  # installs PACKAGE with apt-get when NAME is missing
#   bench_conditions                # the date/kernel/CPUs/load line and the tree line
#   bench_on_exit 'command'         # run at exit before $work is removed
#
# Environment understood here (the same in every script):
#   BPFBOX_BIN        bpfbox binary; when given, nothing is built
#   BPFBOX_SCRATCH    SwiftPM scratch path to build in (default .build, or the script's default)
#   SWIFT_BUILD_FLAGS extra `swift build` flags (use another BPFBOX_SCRATCH with them)
#   NO_BUILD          set: use the binary in BPFBOX_SCRATCH as it is
#   NO_INSTALL        set: never run apt-get; a missing tool is then reported, not installed
#   CC                C compiler for the helpers (default cc)

CC=${CC:-cc}
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_exit_hooks=()

bench_die() {
    echo "$bench_name: $*" >&2
    exit 1
}

bench_cleanup() {
    local hook
    for hook in "${bench_exit_hooks[@]}"; do
        eval "$hook" || true
    done
    [[ -n ${work:-} && -d $work ]] && rm -rf "$work"
    return 0
}

bench_on_exit() {
    bench_exit_hooks=("$1" "${bench_exit_hooks[@]}")
}

# bench_init NAME: the script's name for messages; root check; a temporary directory $work.
bench_init() {
    bench_name=$1
    cd "$bench_root"
    if [[ $(id -u) -ne 0 ]]; then
        echo "$bench_name: run as root (loading BPF needs it): sudo $0" >&2
        exit 1
    fi
    work=$(mktemp -d "/tmp/bpfbox-bench-$bench_name.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# bench_bpfbox [DEFAULT_SCRATCH]: sets $bin (and $scratch when building).
bench_bpfbox() {
    if [[ -n ${BPFBOX_BIN:-} ]]; then
        bin=$BPFBOX_BIN
    else
        scratch=${BPFBOX_SCRATCH:-${1:-.build}}
        bin=$scratch/release/bpfbox
        if [[ -z ${NO_BUILD:-} ]]; then
            echo "== swift build -c release --scratch-path $scratch ${SWIFT_BUILD_FLAGS:-}"
            # shellcheck disable=SC2086 # SWIFT_BUILD_FLAGS is a list of flags
            if ! swift build -c release --scratch-path "$scratch" ${SWIFT_BUILD_FLAGS:-} >"$work/build.log" 2>&1; then
                tail -n 20 "$work/build.log" >&2
                bench_die "the build failed"
            fi
            tail -n 1 "$work/build.log"
        fi
    fi
    [[ -x $bin ]] || bench_die "$bin is missing: build with swift build -c release"
}

# bench_object NAME.bpf.o: the object the build plugin linked for $bin (the scratch path is two
# levels above <scratch>/release/bpfbox, or three above <scratch>/<triple>/release/bpfbox).
bench_object() {
    local name=$1 dir found=
    dir=$(dirname "$(readlink -f "$bin")")
    for _ in 1 2 3; do
        dir=$(dirname "$dir")
        if [[ -d $dir/plugins ]]; then
            found=$(find "$dir/plugins" -name "$name" -print -quit)
            [[ -n $found ]] && break
        fi
    done
    [[ -n $found && -f $found ]] || return 1
    echo "$found"
}

# bench_mounts: tracefs (classic tracepoints need it; mounted once here so that no tool pays
# for it), bpffs, and the cgroup2 mount point (from mountinfo: /sys/fs/cgroup or, on hybrid
# systems, /sys/fs/cgroup/unified).
bench_mounts() {
    if [[ ! -e /sys/kernel/tracing/events ]]; then
        mount -t tracefs tracefs /sys/kernel/tracing || bench_die "cannot mount tracefs at /sys/kernel/tracing"
    fi
    bpffs=$(awk '$9 == "bpf" { print $5; exit }' /proc/self/mountinfo)
    if [[ -z $bpffs ]]; then
        mount -t bpf bpf /sys/fs/bpf || bench_die "cannot mount bpffs: mount -t bpf bpf /sys/fs/bpf"
        bpffs=/sys/fs/bpf
    fi
    cg2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
    [[ -n $cg2 ]] || bench_die "cgroup v2 is not mounted"
    export BENCH_CGROUP2=$cg2 BENCH_BPFFS=$bpffs
}

# bench_need_tool NAME [PACKAGE]: 0 when NAME is on PATH (installing PACKAGE, default NAME,
# with apt-get unless NO_INSTALL is set); 1 with the reason in $bench_why otherwise.
bench_need_tool() {
    local tool=$1 package=${2:-$1}
    bench_why=
    command -v "$tool" >/dev/null && return 0
    if [[ -n ${NO_INSTALL:-} ]]; then
        bench_why="$tool is not installed (NO_INSTALL is set)"
        return 1
    fi
    echo "== apt-get install -y $package"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >"$work/apt-$package.log" 2>&1; then
        tail -n 5 "$work/apt-$package.log" >&2
        bench_why="apt-get install -y $package failed: $(tail -n 1 "$work/apt-$package.log")"
        return 1
    fi
    command -v "$tool" >/dev/null && return 0
    bench_why="$package was installed, but $tool is not on PATH"
    return 1
}

# bench_cc OUTPUT SOURCE [FLAGS...]: a helper, built fresh into $work.
bench_cc() {
    local out=$1 src=$2
    shift 2
    "$CC" -O2 -Wall -Wextra -I bench -o "$work/$out" "$src" "$@"
}

bench_conditions() {
    echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        local tree
        tree=$(git rev-parse --short HEAD)
        git diff --quiet HEAD -- Sources bpf Package.swift || tree+=" + uncommitted changes in Sources, bpf or Package.swift"
        if [[ -n $(git ls-files --others --exclude-standard -- Sources bpf) ]]; then
            tree+=" + untracked files in Sources or bpf"
        fi
        [[ -n ${BPFBOX_BIN:-} && -z ${BENCH_BUILT:-} ]] && tree+=" (the checkout; the binary is BPFBOX_BIN, built from whatever it was built from)"
        echo "tree:    $tree"
    fi
    [[ -n ${bin:-} ]] && echo "bpfbox:  $bin ($(stat -c %s "$bin") bytes)"
    return 0
}

# le64 N: N as eight little-endian hex bytes (bpftool map update ... key hex ...).
le64() {
    local hex i out=()
    hex=$(printf '%016x' "$1")
    for i in 14 12 10 8 6 4 2 0; do out+=("${hex:$i:2}"); done
    echo "${out[@]}"
}

# bench_bpf_object NAME SOURCE.bpf.c: a reference BPF object built the way the build plugin
# builds bpfbox's (clang -target bpf -mcpu=v2 -O2 -g against bpf/<arch>/vmlinux.h), into
# $work/NAME.bpf.o.
bench_bpf_object() {
    local name=$1 src=$2 arch
    case $(uname -m) in
        x86_64) arch=x86 ;;
        aarch64) arch=arm64 ;;
        *) arch=$(uname -m) ;;
    esac
    clang -target bpf -mcpu=v2 -g -O2 "-D__TARGET_ARCH_$arch" -Wall -Werror \
        -Wno-unknown-warning-option -Wno-default-const-init-var-unsafe \
        -I bpf -I "bpf/$arch" -idirafter /usr/include -c "$src" -o "$work/$name.bpf.o" \
        || bench_die "clang could not build $src"
}
