#!/usr/bin/env bash
# Builds harness/gitops-check (Argo CD's Lua under gopher-lua, kstatus, Flux's CEL under cel-go) from
# Go modules into the control plane's binary cache, keyed by a hash of the harness's sources so an
# edit rebuilds it and nothing else does. Prints the binary's path. Small: about 30 s on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/harness/gitops-check"
cache=${BATCHROLLOUT_CACHE:-$HOME/.cache/batchrollout}
bindir="$cache/bin"
mkdir -p "$bindir"
# Test files may ask at once: one builds, the others wait and then find the cache.
exec 9>"$bindir/.gitops-check.lock"
flock 9

version=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)
out="$bindir/gitops-check-$version"
if [[ ! -f "$out/.complete" ]]; then
  printf '[build-gitops-check] building %s (first time only)\n' "$out" >&2
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -pgo=off -trimpath -ldflags "-s -w" -o "$out.tmp/gitops-check" .)
  rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out/.complete"
fi
echo "$out/gitops-check"
