#!/usr/bin/env bash
# sysroot.sh DIR [CUDART_STATIC]: a glibc 2.31 sysroot (Debian 11's libc6, libc6-dev,
# linux-libc-dev, libcrypt) in DIR, for `make gpu-bundle`: binaries linked against it need glibc
# 2.3 or later (every versioned symbol they use is the oldest of its name), so the bundle starts
# on the older distributions GPU machines run (Ubuntu 20.04, RHEL 8, ...), not only on the
# build machine's. The packages come from the Debian mirror this machine's apt already uses,
# checked with Debian's archive keyring. CUDART_STATIC (libcudart_static.a) is linked in so that
# the sysroot's library directory is the only one searched.
set -euo pipefail
dir=$1
cudart=${2:-}
suite=${SYSROOT_SUITE:-bullseye}
[ -f "$dir/.complete" ] && exit 0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
apt=$dir.apt
rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
# the mirror: the first Debian URI of the system's sources (deb822 or one-line format)
uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -m1 -v security || true)
[ -z "$uri" ] && uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -m1 -v security || true)
if [ -z "$uri" ]; then
  echo "sysroot.sh: no Debian mirror in this machine's apt sources" >&2
  exit 1
fi
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$apt/sources.list"
A=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt/lists"
  -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${A[@]}" -q update >"$apt/update.log" 2>&1 || { cat "$apt/update.log" >&2; exit 1; }
(cd "$apt/debs" && apt-get "${A[@]}" -q download libc6 libc6-dev linux-libc-dev libcrypt1 libcrypt-dev >"$apt/download.log" 2>&1) ||
  { cat "$apt/download.log" >&2; exit 1; }
for d in "$apt"/debs/*.deb; do dpkg-deb -x "$d" "$dir"; done
# absolute links point into the sysroot
find "$dir" -type l -lname '/*' | while read -r l; do ln -sfn "$dir$(readlink "$l")" "$l"; done
# the compiler's own C++ headers; the static CUDA runtime
ln -sfn /usr/include/c++ "$dir/usr/include/c++"
mkdir -p "$dir/usr/include/x86_64-linux-gnu"
ln -sfn /usr/include/x86_64-linux-gnu/c++ "$dir/usr/include/x86_64-linux-gnu/c++"
[ -n "$cudart" ] && ln -sfn "$(readlink -f "$cudart")" "$dir/usr/lib/x86_64-linux-gnu/libcudart_static.a"
rm -rf "$apt"
echo "glibc $(ls "$dir"/lib/x86_64-linux-gnu/libc-*.so | sed 's/.*libc-//; s/\.so//') sysroot in $dir" >"$dir/.complete"
cat "$dir/.complete"
