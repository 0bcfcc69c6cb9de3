#!/usr/bin/env bash
# Finds a Redis server for the tests that need a real one (internal/redistest) and prints its
# path: redis-server or valkey-server from PATH (or OFFERFEED_REDIS_SERVER when it is set and
# executable); otherwise, when run as root on a system with apt, installs Debian's
# redis-server package; otherwise says what to install and fails.
#
#   hack/redis/find.sh            # print the path of the server binary
#
# make test exports the path as OFFERFEED_REDIS_SERVER, which makes a missing server a test
# failure rather than a skip.
set -euo pipefail

found() {
	echo "redis: using $1" >&2
	echo "$1"
	exit 0
}

if [[ -n "${OFFERFEED_REDIS_SERVER:-}" ]]; then
	if [[ -x "$OFFERFEED_REDIS_SERVER" ]]; then
		found "$OFFERFEED_REDIS_SERVER"
	fi
	echo "redis: OFFERFEED_REDIS_SERVER=$OFFERFEED_REDIS_SERVER is not an executable file" >&2
	exit 1
fi

lookup() {
	local b
	for b in redis-server valkey-server; do
		if p="$(command -v "$b" 2>/dev/null)"; then
			echo "$p"
			return 0
		fi
	done
	# Debian installs the binaries in /usr/bin, but a minimal PATH may lack it.
	for p in /usr/bin/redis-server /usr/bin/valkey-server; do
		if [[ -x "$p" ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

if p="$(lookup)"; then
	found "$p"
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "redis: no redis-server or valkey-server on PATH; installing Debian's redis-server package" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends redis-server >&2
	if p="$(lookup)"; then
		found "$p"
	fi
	echo "redis: apt-get installed redis-server, but no server binary was found" >&2
	exit 1
fi

cat >&2 <<'MSG'
redis: the tests need a Redis server (7.x) or Valkey server binary, and none is on PATH.
Install one of:
  Debian/Ubuntu:  sudo apt-get install redis-server      (or: sudo apt-get install valkey-server)
  Fedora/RHEL:    sudo dnf install redis                 (or: valkey)
  macOS:          brew install redis                     (or: valkey)
or set OFFERFEED_REDIS_SERVER to the path of a redis-server binary.
MSG
exit 1
