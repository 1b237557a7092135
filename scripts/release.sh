#!/usr/bin/env bash
# The release artefacts, in one command:
#   dist/bpfbox                                  one binary that needs only glibc: the Swift runtime,
#                                                libbpf, libelf, zlib, libstdc++ and libgcc linked in
#   dist/bpfbox-VERSION-linux-ARCH.tar.gz        a /usr/local-style tree: bin/ (binary and applet links),
#                                                share/man/man8, share/{bash-completion,zsh,fish}
#   dist/bpfbox_VERSION_ARCH.deb                 /usr/sbin/bpfbox, /usr/sbin/APPLET -> bpfbox, gzipped man
#                                                pages in /usr/share/man/man8, completions where Debian's
#                                                bash, zsh and fish look
#
# The build goes to .build-static (its own scratch path: .build/release, which tools/ links to, keeps
# the normal release build). Needs: libbpf-dev libelf-dev zlib1g-dev (their .a files), g++'s
# libstdc++.a, dpkg-deb. Usage: scripts/release.sh [OUTPUT_DIR]   (default dist)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-dist}
scratch=.build-static
die() { echo "release.sh: $*" >&2; exit 1; }

version=$(sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/Applets/Registry.swift)
[ -n "$version" ] || die "cannot read the version from Sources/Applets/Registry.swift"
arch=$(dpkg --print-architecture)
multiarch=$(gcc -print-multiarch)

# -lbpf, -lelf, -lz and -lstdc++ find these archives first: a directory given with -L is searched
# before the system's, and it holds no .so for the linker to prefer.
libs=$PWD/$scratch/static-libs
mkdir -p "$libs"
for lib in libbpf.a libelf.a libz.a; do
    [ -f "/usr/lib/$multiarch/$lib" ] || die "/usr/lib/$multiarch/$lib is missing; apt-get install libbpf-dev libelf-dev zlib1g-dev"
    ln -sf "/usr/lib/$multiarch/$lib" "$libs/$lib"
done
stdcxx=$(g++ -print-file-name=libstdc++.a)
[ -f "$stdcxx" ] || die "libstdc++.a not found; apt-get install g++ (libstdc++-dev)"
ln -sf "$stdcxx" "$libs/libstdc++.a"

echo "release.sh: building bpfbox $version (release, static libraries) in $scratch" >&2
swift build -c release --scratch-path "$scratch" --product bpfbox \
    -Xlinker -L"$libs" -Xswiftc -Xclang-linker -Xswiftc -static-libgcc

rm -rf "$out"
mkdir -p "$out"
bin=$out/bpfbox
cp "$scratch/release/bpfbox" "$bin"
strip "$bin"

# Only glibc may be left to load.
extra=$(ldd "$bin" | awk '{print $1}' | grep -Ev '^(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|/lib64/ld-linux)' || true)
[ -z "$extra" ] || die "$bin still needs: $extra"
env -i "$bin" --version >/dev/null || die "$bin does not run"

# The tarball: what `bpfbox install` lays out, in a directory of its own.
name=bpfbox-$version-linux-$arch
tree=$scratch/$name
rm -rf "$tree"
"$bin" install --prefix "$PWD/$tree" --man-dir man/man8 >/dev/null
cp README.md "$tree/"
tar -C "$scratch" --owner=0 --group=0 -czf "$out/$name.tar.gz" "$name"

# The Debian package: the same tree under /usr, binaries in sbin (they need root), man pages
# gzipped, zsh's file in Debian's vendor-completions.
stage=$scratch/deb
rm -rf "$stage"
"$bin" install --prefix "$PWD/$stage/usr" --man-dir man/man8 >/dev/null
mv "$stage/usr/bin" "$stage/usr/sbin"
gzip -9n "$stage"/usr/share/man/man8/*.8
mv "$stage/usr/share/zsh/site-functions" "$stage/usr/share/zsh/vendor-completions"
mkdir -p "$stage/usr/share/doc/bpfbox" "$stage/DEBIAN"
gzip -9n < README.md > "$stage/usr/share/doc/bpfbox/README.md.gz"
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
cat > "$stage/DEBIAN/control" <<EOF
Package: bpfbox
Version: $version
Architecture: $arch
Maintainer: bpfbox developers <bpfbox@localhost>
Depends: libc6 (>= $glibc)
Section: admin
Priority: optional
Installed-Size: $(du -sk "$stage/usr" | cut -f1)
Description: eBPF tracing tools for containers in one binary
 execsnoop, opensnoop, capable, tcpconnect, tcptop, skbcount and sockmap in one
 self-contained binary (bcc-style options and output, CO-RE BPF programs
 embedded), with container filters and JSON output for log pipelines.
EOF
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$out/bpfbox_${version}_$arch.deb" >/dev/null

size=$(stat -c %s "$bin")
echo "release.sh: $bin: $size bytes ($(( size / 1024 / 1024 )) MiB), needs $(ldd "$bin" | awk '{print $1}' | tr '\n' ' ')" >&2
ls -l "$out" >&2
