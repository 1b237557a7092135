#!/usr/bin/env bash
# Tests the release artefacts of scripts/release.sh (building them first unless --no-build):
#   - the binary runs with an empty environment and needs only glibc (ldd);
#   - the tarball's links, man pages and completions are there, and a link runs the applet;
#   - the Debian package installs /usr/sbin/bpfbox, the applet links, the man pages and the
#     completions, and `dpkg -r` removes them all again.
# Needs root (dpkg -i). Refuses to run when a bpfbox package or /usr/sbin/bpfbox is already on
# the machine, so it never replaces what someone installed. .ci/run runs it after the test suite.
# Usage: scripts/release-test.sh [--no-build] [DIST_DIR]   (default dist)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
dist=${1:-dist}
failures=0
fail() { echo "release-test: FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "release-test: ok: $*"; }
die() { echo "release-test: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (dpkg -i and -r); run it as root"
if dpkg -s bpfbox >/dev/null 2>&1 || [ -e /usr/sbin/bpfbox ]; then
    die "bpfbox is already installed here (dpkg -s bpfbox, /usr/sbin/bpfbox); remove it first (dpkg -r bpfbox)"
fi
if [ "$build" = 1 ]; then scripts/release.sh "$dist"; fi

version=$(sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/Applets/Registry.swift)
arch=$(dpkg --print-architecture)
bin=$dist/bpfbox
tarball=$dist/bpfbox-$version-linux-$arch.tar.gz
deb=$dist/bpfbox_${version}_$arch.deb
for f in "$bin" "$tarball" "$deb"; do [ -f "$f" ] || die "$f is missing; run scripts/release.sh"; done
applets=$("$bin" --list)
linked=$(for a in $applets; do if [ -f "man/man8/$a.8" ]; then echo "$a"; fi; done)  # the tracing applets

# The binary alone.
if out=$(env -i LD_LIBRARY_PATH= "$bin" --version) && [ "$out" = "bpfbox $version" ]; then
    pass "env -i $bin --version: $out"
else
    fail "env -i $bin --version printed '$out'"
fi
needs=$(ldd "$bin" | awk '{print $1}')
extra=$(echo "$needs" | grep -Ev '^(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|/lib64/ld-linux)' || true)
if [ -z "$extra" ]; then pass "ldd: only glibc ($(echo $needs))"; else fail "ldd shows more than glibc: $extra"; fi
pass "size: $(stat -c %s "$bin") bytes"

# The tarball.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -C "$tmp" -xzf "$tarball"
root=$tmp/bpfbox-$version-linux-$arch
for a in $linked; do
    [ "$(readlink "$root/bin/$a")" = bpfbox ] || fail "tarball: bin/$a is not a link to bpfbox"
    [ -f "$root/share/man/man8/$a.8" ] || fail "tarball: no man page $a.8"
done
"$root/bin/execsnoop" --help | grep -q '^usage: execsnoop' || fail "tarball: bin/execsnoop --help does not run execsnoop"
for f in share/bash-completion/completions/bpfbox share/zsh/site-functions/_bpfbox share/fish/vendor_completions.d/bpfbox.fish; do
    [ -s "$root/$f" ] || fail "tarball: no $f"
done
pass "tarball: binary, links, man pages, completions"

# The Debian package: install, look, remove, look again.
installed=(/usr/sbin/bpfbox /usr/share/bash-completion/completions/bpfbox /usr/share/zsh/vendor-completions/_bpfbox
           /usr/share/fish/vendor_completions.d/bpfbox.fish /usr/share/man/man8/bpfbox-completions.8.gz)
for a in $linked; do
    installed+=("/usr/sbin/$a" "/usr/share/man/man8/$a.8.gz" "/usr/share/bash-completion/completions/$a")
done
dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb"
for f in "${installed[@]}"; do [ -e "$f" ] || fail "after dpkg -i: $f is missing"; done
[ "$(readlink /usr/sbin/execsnoop)" = bpfbox ] || fail "/usr/sbin/execsnoop is not a link to bpfbox"
/usr/sbin/execsnoop --help | grep -q '^usage: execsnoop' || fail "/usr/sbin/execsnoop --help does not run execsnoop"
zcat /usr/share/man/man8/execsnoop.8.gz | grep -q '^\.TH' || fail "execsnoop.8.gz is not a man page"
bash --norc -c 'source /usr/share/bash-completion/completions/execsnoop && complete -p execsnoop' | grep -q _bpfbox \
    || fail "the packaged bash completion does not complete execsnoop"
dpkg -L bpfbox | grep -qx /usr/sbin/tcptop || fail "dpkg -L bpfbox does not list /usr/sbin/tcptop"
pass "dpkg -i: $(dpkg -L bpfbox | grep -c .) paths, /usr/sbin/bpfbox and the links work"
dpkg -r bpfbox >/dev/null || fail "dpkg -r bpfbox"
for f in "${installed[@]}"; do [ ! -e "$f" ] && [ ! -L "$f" ] || fail "after dpkg -r: $f is still there"; done
dpkg -s bpfbox >/dev/null 2>&1 && fail "dpkg -s bpfbox: still installed after dpkg -r"
pass "dpkg -r: every file and link is gone"

if [ "$failures" -gt 0 ]; then die "$failures check(s) failed"; fi
echo "release-test: all checks passed"
