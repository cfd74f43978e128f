#!/usr/bin/env bash
# Builds the Go tools the test suite runs for real, once per machine:
#   - the Databricks CLI (github.com/databricks/cli; the module's binary is `cli`, linked as `databricks`)
#   - actionlint (GitHub workflow linter)
# Both are compiled from the Go module proxy and cached under
# ${LAKELINE_TOOLS:-$HOME/.cache/lakeline/tools}/<tool>/<version>/, so a second run does nothing.
# Prints the paths of the tools on stdout as NAME=PATH lines.
#
# Why not `go install github.com/databricks/cli@v1.10.0`: `go install pkg@version` asks the proxy
# for the module's version list (to check deprecation), which the proxy reachable here refuses.
# Building the same module version from a throwaway main module needs only the version itself and
# its dependencies, which sum.golang.org verifies as usual. The result is the same binary.
set -euo pipefail

# Newest CLI release whose module and dependencies the Go proxy serves here (v1.11.0 needs
# databricks-sdk-go v0.166.0, which the proxy refuses). Keep in step with the workflows' setup-cli.
DATABRICKS_CLI_VERSION=1.10.0
ACTIONLINT_VERSION=1.7.12

tools_root=${LAKELINE_TOOLS:-$HOME/.cache/lakeline/tools}
mkdir -p "$tools_root/bin"

log() { printf 'tools.sh: %s\n' "$*" >&2; }

# Throwaway build directories, removed however the script ends. Go's module cache is read-only
# by design, hence the chmod before rm.
build_dirs=()
cleanup() {
  local d
  for d in "${build_dirs[@]}"; do
    chmod -R u+w "$d" 2>/dev/null || true
    rm -rf "$d"
  done
}
trap cleanup EXIT

find_go() {
  local go_bin
  go_bin=$(command -v go || true)
  if [[ -z $go_bin && -x /usr/local/go/bin/go ]]; then go_bin=/usr/local/go/bin/go; fi
  if [[ -z $go_bin ]]; then
    log "Go >= 1.26 is required to build the Databricks CLI; install it and rerun."
    exit 1
  fi
  local minor
  minor=$("$go_bin" env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  if ((minor < 26)); then
    log "found $("$go_bin" env GOVERSION) at $go_bin; the Databricks CLI needs Go >= 1.26."
    exit 1
  fi
  printf '%s\n' "$go_bin"
}

# build_tool NAME VERSION OUTPUT MODULE PACKAGE [LDFLAGS]
# Builds PACKAGE from MODULE@vVERSION in a private, throwaway GOPATH and moves the binary to
# OUTPUT atomically, so an interrupted build never leaves a half-written tool behind.
build_tool() {
  local name=$1 version=$2 output=$3 module=$4 package=$5 ldflags=${6:-}
  local go_bin work start
  go_bin=$(find_go)
  work=$(mktemp -d "$tools_root/.build-$name.XXXXXX")
  build_dirs+=("$work")
  start=$SECONDS
  log "building $name v$version with $("$go_bin" env GOVERSION) (first run on this machine only)"
  printf 'module lakeline.local/tools/%s\n\ngo 1.26\n\nrequire %s v%s\n' \
    "$name" "$module" "$version" >"$work/go.mod"
  (
    cd "$work"
    export GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOCACHE="$work/gocache"
    export GOPROXY=${LAKELINE_GOPROXY:-https://proxy.golang.org} GOTOOLCHAIN=local
    export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
    "$go_bin" build -trimpath -ldflags "-s -w $ldflags" -o "$work/$name" "$package"
  )
  mkdir -p "$(dirname "$output")"
  mv -f "$work/$name" "$output"
  log "built $name v$version in $((SECONDS - start))s -> $output"
}

cli="$tools_root/databricks-cli/$DATABRICKS_CLI_VERSION/databricks"
if [[ ! -x $cli ]]; then
  build_tool cli "$DATABRICKS_CLI_VERSION" "$cli" github.com/databricks/cli github.com/databricks/cli \
    "-X github.com/databricks/cli/internal/build.buildProjectName=cli -X github.com/databricks/cli/internal/build.buildVersion=$DATABRICKS_CLI_VERSION"
fi

actionlint="$tools_root/actionlint/$ACTIONLINT_VERSION/actionlint"
if [[ ! -x $actionlint ]]; then
  build_tool actionlint "$ACTIONLINT_VERSION" "$actionlint" github.com/rhysd/actionlint \
    github.com/rhysd/actionlint/cmd/actionlint \
    "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
fi

# Stable names for people and tests: $tools_root/bin/{databricks,actionlint}.
ln -sfn "$cli" "$tools_root/bin/databricks"
ln -sfn "$actionlint" "$tools_root/bin/actionlint"

printf 'databricks=%s\n' "$tools_root/bin/databricks"
printf 'actionlint=%s\n' "$tools_root/bin/actionlint"
