#!/usr/bin/env bash
# Builds the Go programs the tests run (the real Terraform providers) at the versions tools/go.mod
# pins, from the Go module proxy, into a cache outside the clone keyed by version. A warm cache
# builds nothing.
#
#   tools/build.sh    build what is missing; print one line per program on stdout:
#                     <name> <release> <path of the binary>   (tab-separated; progress goes to stderr)
#
# Builds the real Terraform providers the tests run and OpenTofu (see tools/README.md).
#
# Cache: $CDKTF_K3S_KILO_TOOLS, default ${XDG_CACHE_HOME:-~/.cache}/cdktf-k3s-kilo/go-tools.
# Each program lands in <cache>/<name>/<release>-<module version>-<go version>/<name>; a build
# happens in a temporary directory and is moved into place whole, so an interrupted build leaves
# nothing that looks finished.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CDKTF_K3S_KILO_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cdktf-k3s-kilo/go-tools}

command -v go >/dev/null || { echo "tools/build.sh: go is not on PATH (Go >= 1.25 is needed to build the test tools)" >&2; exit 1; }
# The module content is checked against tools/go.sum (and each program's dependencies against
# its own go.sum) by Go itself; nothing is fetched that a go.sum does not name.
export GOFLAGS=-mod=readonly CGO_ENABLED=0
goversion=$(go env GOVERSION)

# One build at a time per cache (two test workers may ask at once); the second finds it built.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 3600 9 || { echo "tools/build.sh: another build held $cache/.lock for an hour" >&2; exit 1; }

# name | module (as in go.mod) | release it is | package to build, relative to the module root |
# the -X setting the project's own release build passes (HashiCorp's providers: main.version;
# OpenTofu's goreleaser: version.dev=no, which drops the "-dev" suffix)
tools=(
  "terraform-provider-random|github.com/terraform-providers/terraform-provider-random|3.7.2|.|main.version=3.7.2"
  "terraform-provider-local|github.com/terraform-providers/terraform-provider-local|2.9.0|.|main.version=2.9.0"
  "tofu|github.com/opentofu/opentofu|1.12.6|./cmd/tofu|github.com/opentofu/opentofu/version.dev=no"
)

for t in "${tools[@]}"; do
  IFS='|' read -r name module release pkg xflag <<<"$t"
  version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
  dest="$cache/$name/$release-$version-$goversion"
  if [ -x "$dest/$name" ]; then printf '%s\t%s\t%s\n' "$name" "$release" "$dest/$name"; continue; fi
  start=$(date +%s)
  # Download (verified against tools/go.sum), then build with the module itself as the main
  # module: its own go.mod picks the dependencies, as its release build did.
  (cd "$here" && timeout 900 go mod download "$module")
  dir=$(cd "$here" && go list -m -f '{{.Dir}}' "$module")
  mkdir -p "$cache/$name"
  tmp=$(mktemp -d "$cache/$name/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$dir" && timeout 1800 go build -buildvcs=false -trimpath \
    -ldflags "-s -w -X $xflag" -o "$tmp/$name" "$pkg")
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  echo "tools/build.sh: built $name $release ($module@$version, $goversion) in $(( $(date +%s) - start )) s" >&2
  printf '%s\t%s\t%s\n' "$name" "$release" "$dest/$name"
done
