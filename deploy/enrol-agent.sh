#!/bin/sh
# enrol-agent.sh - installs a quantfleet agent on a lab machine over ssh and enrols its key.
#
# Run on the coordinator's host (where the --allow folder is). Over ssh it copies the qfleet
# binary and the systemd unit to the device, makes the agent's key pair THERE (the secret never
# leaves the device), brings the public key back into the allow folder (which enrols it: the
# coordinator rereads the folder, no restart), writes the agent's settings and starts
# qfleet-agent@NAME. Running it again upgrades the binary and keeps the key. docs/deploy.md
# walks through it; docs/security.md says what the keys are.
#
# usage: deploy/enrol-agent.sh [options] [USER@]HOST NAME
#   --coordinator EP   tcp://HOST:PORT the agent connects to (required)
#   --binary FILE      qfleet built for the device's architecture (default: build/qfleet)
#   --server-key FILE  the coordinator's public key (default /etc/qfleet/coordinator.pub)
#   --allow DIR        the coordinator's --allow folder (default /etc/qfleet/allow)
#   --slots N          jobs at once on the device (default 1)
#   --apt              also apt-get install the runtime libraries on the device (Debian/Ubuntu)
#   --insecure         no keys: plain TCP (a network you trust only; the coordinator too)
#   --dry-run          print the commands instead of running them
# The ssh user must be root or have sudo. Exit status 0 only when the agent is running.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
coordinator="" binary="build/qfleet" server_key="/etc/qfleet/coordinator.pub"
allow="/etc/qfleet/allow" slots=1 apt=0 insecure=0 dry=0

usage() { sed -n '/^# usage:/,/^# The ssh user/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
die() { echo "enrol-agent: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --coordinator) coordinator=${2:?}; shift 2 ;;
        --binary)      binary=${2:?}; shift 2 ;;
        --server-key)  server_key=${2:?}; shift 2 ;;
        --allow)       allow=${2:?}; shift 2 ;;
        --slots)       slots=${2:?}; shift 2 ;;
        --apt)         apt=1; shift ;;
        --insecure)    insecure=1; shift ;;
        --dry-run)     dry=1; shift ;;
        -h|--help)     usage ;;
        -*)            die "unknown option $1 (see --help)" ;;
        *)             break ;;
    esac
done
[ $# -eq 2 ] || usage
host=$1 name=$2

# The name becomes a file name, a unit instance and the key's User-Id: keep it plain.
case "$name" in
    ""|*[!A-Za-z0-9._-]*|.*) die "agent name '$name': use letters, digits and . _ - only" ;;
esac
case "$coordinator" in
    tcp://*:[0-9]*) ;;
    *) die "--coordinator tcp://HOST:PORT is required (got '$coordinator')" ;;
esac
case "$slots" in ""|*[!0-9]*) die "--slots wants a number, got '$slots'" ;; esac
[ -f "$binary" ] || die "no qfleet binary at $binary (build it, or cross-build: docs/deploy.md)"
[ -f "$here/systemd/qfleet-agent@.service" ] || die "qfleet-agent@.service not beside $0"
if [ "$insecure" -eq 0 ]; then
    [ -f "$server_key" ] || die "no coordinator public key at $server_key (qfleet keygen, docs/security.md)"
    [ -d "$allow" ] || die "no allow folder at $allow"
    [ ! -e "$allow/$name.pub" ] || echo "enrol-agent: $allow/$name.pub exists: re-enrolling $name"
fi

run() {   # run a local command (or print it)
    if [ "$dry" -eq 1 ]; then echo "+ $*"; else "$@"; fi
}
remote() {   # run a shell snippet on the device as root
    if [ "$dry" -eq 1 ]; then echo "+ ssh $host: $*"; return 0; fi
    ssh -o BatchMode=yes "$host" "$sudo sh -c '$*'"
}

# ELF machine of the binary against the device's: a wrong-architecture binary fails late and
# obscurely, so refuse it here. e_machine is the 16-bit little-endian field at offset 18.
machine=$(od -An -t u2 -j 18 -N 2 "$binary" | tr -d ' ')
case "$machine" in
    62)  bin_arch=x86_64 ;;
    183) bin_arch=aarch64 ;;
    *)   bin_arch="ELF machine $machine" ;;
esac
if [ "$dry" -eq 1 ]; then
    dev_arch=$bin_arch sudo=""
else
    dev_arch=$(ssh -o BatchMode=yes "$host" uname -m) || die "cannot ssh to $host"
    if [ "$(ssh -o BatchMode=yes "$host" id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi
fi
[ "$dev_arch" = "$bin_arch" ] || die "$binary is $bin_arch, $host is $dev_arch"

echo "enrol-agent: installing agent $name on $host ($dev_arch) for $coordinator"
run scp -q -o BatchMode=yes "$binary" "$host:/tmp/qfleet"
run scp -q -o BatchMode=yes "$here/systemd/qfleet-agent@.service" "$host:/tmp/"
if [ "$apt" -eq 1 ]; then
    remote "DEBIAN_FRONTEND=noninteractive apt-get install -y -q libzmq5 libmsgpackc2 \
        libsqlite3-0 libhwloc15 libyaml-0-2 libsodium23 libjansson4 libcurl4 ca-certificates"
fi
remote "install -m 0755 /tmp/qfleet /usr/local/bin/qfleet && install -d -m 0755 /etc/qfleet && \
    install -m 0644 /tmp/qfleet-agent@.service /etc/systemd/system/qfleet-agent@.service && \
    rm -f /tmp/qfleet /tmp/qfleet-agent@.service"

# the agent's settings, written here and installed there (no quoting through ssh)
env_file=$(mktemp)
trap 'rm -f "$env_file"' EXIT
if [ "$insecure" -eq 1 ]; then
    printf 'QF_CONNECT=%s\nQF_AGENT_OPTS=--slots %s --insecure\n' "$coordinator" "$slots" > "$env_file"
    run scp -q -o BatchMode=yes "$here/systemd/qfleet-agent-insecure.conf" "$host:/tmp/"
    remote "install -d /etc/systemd/system/qfleet-agent@$name.service.d && \
        install -m 0644 /tmp/qfleet-agent-insecure.conf /etc/systemd/system/qfleet-agent@$name.service.d/insecure.conf && \
        rm -f /tmp/qfleet-agent-insecure.conf"
else
    printf 'QF_CONNECT=%s\nQF_AGENT_OPTS=--slots %s\n' "$coordinator" "$slots" > "$env_file"
    # the key pair is made on the device, once; only its public half travels
    remote "test -f /etc/qfleet/agent-$name.secret || \
        /usr/local/bin/qfleet keygen /etc/qfleet/agent-$name"
    run scp -q -o BatchMode=yes "$server_key" "$host:/tmp/coordinator.pub"
    remote "install -m 0644 /tmp/coordinator.pub /etc/qfleet/coordinator.pub && rm -f /tmp/coordinator.pub && \
        rm -f /etc/systemd/system/qfleet-agent@$name.service.d/insecure.conf"
    tmp_pub=$(mktemp)
    run scp -q -o BatchMode=yes "$host:/etc/qfleet/agent-$name.pub" "$tmp_pub"
    # into the allow folder atomically: the coordinator may be reading it right now
    run install -m 0644 "$tmp_pub" "$allow/.$name.pub.tmp"
    run mv -f "$allow/.$name.pub.tmp" "$allow/$name.pub"
    rm -f "$tmp_pub"
    [ "$dry" -eq 1 ] || echo "enrol-agent: enrolled $allow/$name.pub" \
        "($(qfleet keygen --fingerprint "$allow/$name.pub" 2>/dev/null || echo "fingerprint: qfleet keygen --fingerprint"))"
fi
run scp -q -o BatchMode=yes "$env_file" "$host:/tmp/qfleet-agent.env"
remote "install -m 0644 /tmp/qfleet-agent.env /etc/qfleet/agent-$name.env && rm -f /tmp/qfleet-agent.env && \
    systemctl daemon-reload && systemctl enable qfleet-agent@$name && systemctl restart qfleet-agent@$name"

# Running and still running a few seconds later (a refused key or a name already taken exits).
[ "$dry" -eq 1 ] && exit 0
sleep 5
if remote "systemctl is-active --quiet qfleet-agent@$name"; then
    echo "enrol-agent: qfleet-agent@$name is running on $host"
else
    remote "journalctl -u qfleet-agent@$name -n 20 --no-pager" || true
    die "qfleet-agent@$name is not running on $host (log above)"
fi
