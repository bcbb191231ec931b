#!/bin/sh
# fetch-ggml.sh - fetch ggml's prebuilt CPU libraries (llama.cpp's kernel library), the byte-exact
# reference for the GGUF formats and the speed peer, from the npm package
# @node-llama-cpp/linux-x64 into a cache folder that is never committed.
# Usage: scripts/fetch-ggml.sh CACHE_DIR
# Leaves CACHE_DIR/node-llama-cpp-linux-x64/bins/linux-x64/libggml-base.so, or explains why not.
# The tarball's SHA-256 is pinned: a different file is refused and nothing is unpacked.
set -eu

version=3.22.1
sha256=0d953e1503d5ab4608d8ed5b739132308c81ac05ffeb760d2a7f30e08a9f90e0
cache=${1:?usage: fetch-ggml.sh CACHE_DIR}
dest="$cache/node-llama-cpp-linux-x64"

[ -f "$dest/bins/linux-x64/libggml-base.so" ] && exit 0
case "$(uname -m)" in
    x86_64) ;;
    *) echo "fetch-ggml: ggml's prebuilt reference is x86_64 only; conformance tests will skip" >&2
       exit 0 ;;
esac
if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-ggml: npm not found; conformance tests will skip" >&2
    exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack --silent "@node-llama-cpp/linux-x64@$version" >/dev/null 2>npm.log); then
    echo "fetch-ggml: npm pack @node-llama-cpp/linux-x64@$version failed:" >&2
    cat "$tmp/npm.log" >&2
    exit 0
fi
tgz="$tmp/node-llama-cpp-linux-x64-$version.tgz"
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$sha256" ]; then
    echo "fetch-ggml: $tgz has SHA-256 $got, expected $sha256; refusing it" >&2
    exit 1
fi
mkdir "$tmp/unpacked"
tar -xzf "$tgz" -C "$tmp/unpacked"
rm -rf "$dest"
mv "$tmp/unpacked/package" "$dest"     # atomic: the folder appears complete or not at all
echo "fetch-ggml: ggml reference ready in $dest"
