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
	ldflags=""
	if [ "$bin" = kube-apiserver ]; then
		# What the Kubernetes release build stamps, so /version says what this is.
		ldflags="-X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
	fi
	# -mod=mod: the harness modules resolve their own go.sum; the main module is untouched.
	(cd "$src" && GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0 \
		go build -trimpath -ldflags "$ldflags" -o "$out/$bin.tmp" . && mv "$out/$bin.tmp" "$out/$bin")
done
