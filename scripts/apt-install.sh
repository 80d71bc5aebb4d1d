#!/usr/bin/env bash
# apt-install.sh PKG... installs the Debian packages among PKG that are not installed yet.
# With --non-free first, it also enables Debian's contrib and non-free components (for the CUDA
# toolkit) through a second sources file derived from the system's own Debian entry.
set -euo pipefail
nonfree=0
if [ "${1:-}" = "--non-free" ]; then nonfree=1; shift; fi
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ $nonfree -eq 1 ] && [ ! -f /etc/apt/sources.list.d/cir-non-free.sources ]; then
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    # The first stanza (the main archive) with only the extra components, so apt sees no
    # duplicate of the system's own "main" entry.
    awk 'BEGIN{RS="";ORS="\n\n"} NR==1' "$src" |
      sed -E 's/^Components:.*/Components: contrib non-free/' |
      $sudo tee /etc/apt/sources.list.d/cir-non-free.sources >/dev/null
  else
    grep -E '^deb ' /etc/apt/sources.list | head -n 1 |
      sed -E 's/ main.*$/ contrib non-free/' |
      $sudo tee /etc/apt/sources.list.d/cir-non-free.list >/dev/null
  fi
fi
echo "installing ${missing[*]}" >&2
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
