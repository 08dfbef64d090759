#!/bin/sh
# Builds the kube-apiserver and etcd binaries the cluster integration tests run, into
# .cache/kube/ at the repository root, only when they are missing. Both come from Go
# modules through the module proxy; a cold build takes minutes, a warm one nothing.
# Usage: cluster/testdata/kube/build.sh [output directory]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(cd "$here/../../.." && pwd)/.cache/kube}
mkdir -p "$out"
for bin in etcd kube-apiserver; do
	src=$here/${bin#kube-}
	if [ -x "$out/$bin" ]; then
		continue
	fi
	echo "building $bin into $out (first time only; takes minutes)" >&2
	# -mod=mod: the harness modules resolve their own go.sum; the main module is untouched.
	(cd "$src" && GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$out/$bin.tmp" . && mv "$out/$bin.tmp" "$out/$bin")
done
