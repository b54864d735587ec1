#!/usr/bin/env bash
# Builds the Go programs the tests run at the versions tools/go.mod and tools/kube/go.mod pin, from
# the Go module proxy, into a cache outside the clone keyed by version. A warm cache builds nothing.
#
#   tools/build.sh    build what is missing; print one line per program on stdout:
#                     <name> <release> <path of the binary>   (tab-separated; progress goes to stderr)
#
# What and why: tools/README.md. Cache: $CDKTF_K3S_KILO_TOOLS, default
# ${XDG_CACHE_HOME:-~/.cache}/cdktf-k3s-kilo/go-tools; each build lands in
# <cache>/<name>/<release>-<module version>-<go version>/. A build happens in a temporary directory
# moved into place whole, so an interrupted build leaves nothing that looks finished.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CDKTF_K3S_KILO_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cdktf-k3s-kilo/go-tools}

command -v go >/dev/null || { echo "tools/build.sh: go is not on PATH (Go >= 1.25 builds the test tools)" >&2; exit 1; }
# Module content is checked against tools/go.sum or tools/kube/go.sum (and each program's
# dependencies against its own go.sum) by Go itself; nothing is fetched that a go.sum does not name.
export GOFLAGS=-mod=readonly
goversion=$(go env GOVERSION)

# One build at a time per cache (two test workers may ask at once); the second finds it built.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 3600 9 || { echo "tools/build.sh: another build held $cache/.lock for an hour" >&2; exit 1; }

# Programs built with their own module as the main module, as their release builds are:
# name | module (as in tools/go.mod) | release | package | -X settings their release build passes |
# cgo | build tags
main_module_tools=(
  "terraform-provider-random|github.com/terraform-providers/terraform-provider-random|3.7.2|.|main.version=3.7.2|0|"
  "terraform-provider-local|github.com/terraform-providers/terraform-provider-local|2.9.0|.|main.version=2.9.0|0|"
  # 3.2.1 plus two commits: see tools/README.md.
  "terraform-provider-kubernetes|github.com/hashicorp/terraform-provider-kubernetes|3.2.1|.|main.version=3.2.1|0|"
  "tofu|github.com/opentofu/opentofu|1.12.6|./cmd/tofu|github.com/opentofu/opentofu/version.dev=no|0|"
  # SQLite through cgo, with the tags kine's own scripts/build uses (less nats).
  "kine|github.com/k3s-io/kine|0.17.5|.|github.com/k3s-io/kine/pkg/version.Version=v0.17.5|1|sqlite_unlock_notify,sqlite_vtable,sqlite_stat4,sqlite_preupdate_hook,sqlite_math_functions,sqlite_dbstat,sqlite_column_metadata"
  "kwok|sigs.k8s.io/kwok|0.7.0|./cmd/kwok|sigs.k8s.io/kwok/pkg/consts.Version=0.7.0 sigs.k8s.io/kwok/pkg/consts.KubeVersion=v1.33.4|0|"
)

# The Kubernetes commands, built together as dependencies of tools/kube (see its tools.go).
kube_release=1.33.4
# kubectl: the tests talk to the API with it as a user would (test/e2e-kubeconfig.test.ts).
kube_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

started=$(date +%s)
# Run "$@" building into a fresh temporary directory under $1's parent, then move it to $1.
build_into() {
  local dest=$1; shift
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp -d "$(dirname "$dest")/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$@"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
}

for t in "${main_module_tools[@]}"; do
  IFS='|' read -r name module release pkg xflags cgo tags <<<"$t"
  version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
  dest="$cache/$name/$release-$version-$goversion"
  if [ ! -x "$dest/$name" ]; then
    start=$(date +%s)
    (cd "$here" && timeout 900 go mod download "$module")
    dir=$(cd "$here" && go list -m -f '{{.Dir}}' "$module")
    ldflags="-s -w"
    for x in $xflags; do ldflags="$ldflags -X $x"; done
    compile() {
      (cd "$dir" && CGO_ENABLED=$cgo timeout 3600 go build -buildvcs=false -trimpath ${tags:+-tags "$tags"} \
        -ldflags "$ldflags" -o "$tmp/$name" "$pkg")
    }
    build_into "$dest" compile
    echo "tools/build.sh: built $name $release ($module@$version, $goversion) in $(( $(date +%s) - start )) s" >&2
  fi
  printf '%s\t%s\t%s\n' "$name" "$release" "$dest/$name"
done

kube_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
dest="$cache/kubernetes/$kube_release-$kube_version-$goversion"
kube_missing=
for c in "${kube_commands[@]}"; do [ -x "$dest/$c" ] || kube_missing=1; done
if [ -n "$kube_missing" ]; then
  start=$(date +%s)
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=v$kube_release -X $p.gitMajor=${kube_release%%.*} -X $p.gitMinor=$(echo "$kube_release" | cut -d. -f2) -X $p.gitTreeState=clean"
  done
  compile_kube() {
    local pkgs=()
    for c in "${kube_commands[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    (cd "$here/kube" && timeout 900 go mod download && CGO_ENABLED=0 timeout 3600 go build -buildvcs=false -trimpath \
      -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  }
  build_into "$dest" compile_kube
  echo "tools/build.sh: built ${kube_commands[*]} $kube_release ($goversion) in $(( $(date +%s) - start )) s" >&2
fi
for c in "${kube_commands[@]}"; do printf '%s\t%s\t%s\n' "$c" "$kube_release" "$dest/$c"; done

elapsed=$(( $(date +%s) - started ))
if [ "$elapsed" -gt 5 ]; then echo "tools/build.sh: done in $elapsed s" >&2; fi
