#!/usr/bin/env bash
# pg-scratch.sh start|stop DIR [PORT SHARED_BUFFERS]: a throwaway PostgreSQL 15 cluster
# (pgvector installed by setup.sh) in DIR, for measurements that need server settings the
# machine's shared server does not have, e.g. `make bench-search SEARCH_SHARED_BUFFERS=4GB`.
#
# start initdbs DIR if needed and starts the server on 127.0.0.1:PORT with shared_buffers
# SHARED_BUFFERS, then prints its admin DSN (superuser postgres, trust auth on loopback only);
# stop stops it and removes DIR. It runs as the postgres user (initdb refuses root).
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
cmd=${1:?usage: pg-scratch.sh start|stop DIR [PORT SHARED_BUFFERS]}
dir=${2:?usage: pg-scratch.sh start|stop DIR [PORT SHARED_BUFFERS]}
port=${3:-55432}
buffers=${4:-128MB}

as_postgres() {
	if [ "$(id -un)" = postgres ]; then "$@"; elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi
}

case $cmd in
start)
	mkdir -p "$dir"
	if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		out=$(as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 2>&1) ||
			{ echo "$out" >&2; echo "pg-scratch: initdb of $dir/data failed" >&2; exit 1; }
	fi
	out=$(as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 120 -l "$dir/server.log" start \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=$buffers -c max_connections=100" 2>&1) ||
		{ echo "$out" >&2; tail -n 20 "$dir/server.log" >&2 || true; echo "pg-scratch: the server in $dir did not start" >&2; exit 1; }
	echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	;;
stop)
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 120 stop -m fast >/dev/null
	fi
	rm -rf "$dir"
	;;
*)
	echo "usage: pg-scratch.sh start|stop DIR [PORT SHARED_BUFFERS]" >&2
	exit 2
	;;
esac
