#!/bin/sh
# fetch-ort.sh - fetch ONNX Runtime's prebuilt CPU library (libonnxruntime.so.1), which the ort
# framework adapter (agent/fw_ort.c) dlopens, from the npm package onnxruntime-node into a cache
# folder that is never committed.
# Usage: scripts/fetch-ort.sh CACHE_DIR
# Leaves CACHE_DIR/onnxruntime-node/libonnxruntime.so.1 (this host's, linux x64 or arm64) and
# the package's package.json (version, MIT licence), or explains why not.
# The tarball's SHA-256 is pinned: a different file is refused and nothing is unpacked. npm pack
# only downloads the tarball (it runs no install script); ONNXRUNTIME_NODE_INSTALL=skip is set
# all the same, so the package's own installer could never reach beyond the registry.
set -eu

version=1.30.0
sha256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
cache=${1:?usage: fetch-ort.sh CACHE_DIR}
dest="$cache/onnxruntime-node"

[ -f "$dest/libonnxruntime.so.1" ] && exit 0
case "$(uname -m)" in
    x86_64)  arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "fetch-ort: onnxruntime-node ships Linux libraries for x86_64 and aarch64 only; the ort adapter test will skip" >&2
       exit 0 ;;
esac
if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-ort: npm not found; the ort adapter test will skip" >&2
    exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export ONNXRUNTIME_NODE_INSTALL=skip
if ! (cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null 2>npm.log); then
    echo "fetch-ort: npm pack onnxruntime-node@$version failed:" >&2
    cat "$tmp/npm.log" >&2
    exit 0
fi
tgz="$tmp/onnxruntime-node-$version.tgz"
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$sha256" ]; then
    echo "fetch-ort: $tgz has SHA-256 $got, expected $sha256; refusing it" >&2
    exit 1
fi
lib="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir "$tmp/unpacked" "$tmp/out"
tar -xzf "$tgz" -C "$tmp/unpacked" package/package.json "$lib"
mv "$tmp/unpacked/$lib" "$tmp/unpacked/package/package.json" "$tmp/out/"
rm -rf "$dest"
mv "$tmp/out" "$dest"     # atomic: the folder appears complete or not at all
echo "fetch-ort: ONNX Runtime $version ready in $dest"
