#!/bin/sh
# deps.sh - make sure the Debian packages quantfleet builds and tests with are installed.
# Called by `make run` and `make test`. As root it installs what is missing with apt-get;
# otherwise it prints the exact apt-get line and fails, so nothing half-configures.
# Usage: scripts/deps.sh PACKAGE...   (npm is checked as a command: any Node.js >= 18 with npm will do;
#        PACKAGE:ARCH, e.g. libcmocka-dev:arm64, enables that architecture first)
set -eu

missing=""
for pkg in "$@"; do
    case "$pkg" in
        npm) command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm" ;;
        *)   dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
                 || missing="$missing $pkg" ;;
    esac
done

[ -z "$missing" ] && exit 0

# Packages of another architecture (libcmocka-dev:arm64 for the cross build) need it enabled.
archs=""
for pkg in $missing; do
    case "$pkg" in
        *:*) arch=${pkg##*:}
             dpkg --print-foreign-architectures | grep -qx "$arch" || archs="$archs $arch" ;;
    esac
done

if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    for arch in $archs; do
        dpkg --add-architecture "$arch"
    done
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run this, then try again:" >&2
    for arch in $archs; do
        echo "  sudo dpkg --add-architecture $arch && sudo apt-get update" >&2
    done
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
