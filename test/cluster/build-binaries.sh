#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, helm, kube-burner, promtool) from Go modules with the machine's Go toolchain, into a cache keyed by
# version. A component whose cached binaries exist is not rebuilt, so only the first run pays.
#
#   test/cluster/build-binaries.sh          # build what is missing, print the bin directory
#   BATCHROLLOUT_CACHE=/path ...            # cache root (default ~/.cache/batchrollout)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${BATCHROLLOUT_CACHE:-$HOME/.cache/batchrollout}
bindir="$cache/bin"
mkdir -p "$bindir"
# Several callers (a test run, a benchmark, a demo) may ask at once: one builds, the others wait
# and then find the cache.
exec 9>"$bindir/.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Profile-guided optimisation multiplies compile time for no benefit in a test bed.
build_flags=(-pgo=off -trimpath)

log() { printf '[build-binaries] %s\n' "$*" >&2; }

# build NAME VERSION HARNESS LDFLAGS PKG...: go build PKG... into $bindir/NAME-VERSION/
build() {
  local name=$1 version=$2 harness=$3 ldflags=$4
  shift 4
  local out="$bindir/$name-$version"
  if [[ -f "$out/.complete" ]]; then
    log "$name $version: cached in $out"
    return
  fi
  log "$name $version: building $* (first time only; this takes minutes)"
  local start=$SECONDS tmp="$out.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$here/harness/$harness" && go mod download && go build "${build_flags[@]}" -ldflags "$ldflags" -o "$tmp/" "$@")
  rm -rf "$out" && mv "$tmp" "$out" && touch "$out/.complete"
  log "$name $version: built in $((SECONDS - start)) s"
}

k8s_minor=${KUBERNETES_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build etcd "$ETCD_VERSION" etcd "-s -w" .
# kwok from a copy of its module whose pod deletes carry the pod's UID (harness/kwok-patch), so a
# stale delete job cannot remove a new pod that took the same name. The cache key names the patch.
KWOK_BUILD="$KWOK_VERSION-uid-delete"
KWOK_PATCH_DIR=""
kwok_patched_module() {
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  KWOK_PATCH_DIR="$bindir/kwok-$KWOK_BUILD.src"
  rm -rf "$KWOK_PATCH_DIR" && cp -r "$dir" "$KWOK_PATCH_DIR" && chmod -R u+w "$KWOK_PATCH_DIR"
  "$here/harness/kwok-patch/pod-delete-uid.sh" "$KWOK_PATCH_DIR"
  cp "$here/harness/kwok/go.mod" "$KWOK_PATCH_DIR.mod" && cp "$here/harness/kwok/go.sum" "$KWOK_PATCH_DIR.sum"
  (cd "$here/harness/kwok" && go mod edit -modfile="$KWOK_PATCH_DIR.mod" -replace "sigs.k8s.io/kwok=$KWOK_PATCH_DIR")
}
if [[ ! -f "$bindir/kwok-$KWOK_BUILD/.complete" ]]; then
  (cd "$here/harness/kwok" && go mod download)
  kwok_patched_module
fi
build_flags_plain=("${build_flags[@]}")
[[ -n "$KWOK_PATCH_DIR" ]] && build_flags+=(-modfile="$KWOK_PATCH_DIR.mod")
build kwok "$KWOK_BUILD" kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
build_flags=("${build_flags_plain[@]}")
[[ -n "$KWOK_PATCH_DIR" ]] && rm -rf "$KWOK_PATCH_DIR" "$KWOK_PATCH_DIR.mod" "$KWOK_PATCH_DIR.sum"
build helm "$HELM_VERSION" helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm
build kubernetes "$KUBERNETES_VERSION" kubernetes "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
# kube-burner, for the benchmark's fixed-QPS methods (its go.mod's replace directives are copied into the harness).
build kube-burner "$KUBE_BURNER_VERSION" kube-burner "-s -w -X github.com/cloud-bulldozer/go-commons/v2/version.Version=$KUBE_BURNER_VERSION" \
  github.com/kube-burner/kube-burner/v2/cmd/kube-burner
# promtool, to check and unit-test the chart's Prometheus rules (test/prometheus/).
prom_ldflags="-s -w"
for v in "Version=${PROMETHEUS_VERSION#v}" "Revision=$PROMETHEUS_VERSION" "Branch=HEAD" "BuildDate=19700101-00:00:00"; do
  prom_ldflags+=" -X github.com/prometheus/common/version.$v"
done
build prometheus "$PROMETHEUS_VERSION" prometheus "$prom_ldflags" github.com/prometheus/prometheus/cmd/promtool

# One directory with a link per binary, so callers need a single PATH entry.
current="$bindir/current"
mkdir -p "$current"
ln -sf "$bindir/etcd-$ETCD_VERSION/etcd" "$current/etcd"
ln -sf "$bindir/kwok-$KWOK_BUILD/kwok" "$current/kwok"
ln -sf "$bindir/helm-$HELM_VERSION/helm" "$current/helm"
ln -sf "$bindir/kube-burner-$KUBE_BURNER_VERSION/kube-burner" "$current/kube-burner"
ln -sf "$bindir/prometheus-$PROMETHEUS_VERSION/promtool" "$current/promtool"
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  ln -sf "$bindir/kubernetes-$KUBERNETES_VERSION/$c" "$current/$c"
done
echo "$current"
