#!/usr/bin/env bash
# setup.sh installs everything facestream needs on a Debian 12 machine, idempotently.
#
#   1. OpenCV 4.6 development packages (gocv) and the PostgreSQL 15 server headers.
#   2. The ONNX Runtime 1.30 CPU shared library, taken from the onnxruntime-node npm
#      tarball, checked against its sha256 and kept in .deps/ (ignored by git).
#   3. pgvector 0.8.0, built from Debian trixie's source package against PostgreSQL 15
#      with a private apt configuration (the machine's /etc/apt is only read, never written).
#   4. A running PostgreSQL with a facestream role and database, and the vector extension.
#
# A second run finds everything in place and prints one line. Each failing step names
# what failed and how to fix it. Quiet unless FACESTREAM_SETUP_VERBOSE=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/.deps"
ORT_VERSION=1.30.0
ORT_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ORT_LIB="$DEPS/onnxruntime/libonnxruntime.so.$ORT_VERSION"
PGVECTOR_VERSION=0.8.0
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
DB_ROLE=${FACESTREAM_DB_ROLE:-facestream}
DB_NAME=${FACESTREAM_DB_NAME:-facestream}
VERBOSE=${FACESTREAM_SETUP_VERBOSE:-0}

did=()
log() { [ "$VERBOSE" = 1 ] && echo "setup: $*" >&2 || true; }
fail() {
	echo "setup: FAILED: $1" >&2
	echo "setup: fix: $2" >&2
	exit 1
}
# quiet runs a command, showing its output only when it fails.
quiet() {
	local out
	if ! out=$("$@" 2>&1); then
		echo "$out" | tail -n 30 >&2
		return 1
	fi
	[ "$VERBOSE" = 1 ] && echo "$out" >&2
	return 0
}
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# --- 1. Debian packages -------------------------------------------------------
apt_updated=0
ensure_debs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	if [ $apt_updated = 0 ]; then
		quiet as_root apt-get update -q || fail "apt-get update" "check the machine's Debian sources and network, then rerun"
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive quiet as_root apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		fail "apt-get install ${missing[*]}" "run 'apt-get install ${missing[*]}' by hand to see the error (root is needed)"
	did+=("debs: ${missing[*]}")
}

ensure_debs libopencv-dev pkg-config build-essential dpkg-dev "postgresql-server-dev-$PG_MAJOR" ca-certificates

# --- 2. ONNX Runtime ----------------------------------------------------------
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
if ! sha_ok "$ORT_LIB" "$ORT_SHA256"; then
	command -v npm >/dev/null || fail "npm not found" "install Node.js and npm (apt-get install npm)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	log "fetching onnxruntime-node@$ORT_VERSION"
	(cd "$tmp" && quiet npm pack --silent "onnxruntime-node@$ORT_VERSION") ||
		fail "npm pack onnxruntime-node@$ORT_VERSION" "check that the npm registry is reachable ('npm view onnxruntime-node@$ORT_VERSION version')"
	tar -xzf "$tmp/onnxruntime-node-$ORT_VERSION.tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 ||
		fail "extract libonnxruntime.so.1 from the npm tarball" "the tarball layout changed; look inside with 'tar -tzf'"
	got=$(sha256sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | cut -d' ' -f1)
	[ "$got" = "$ORT_SHA256" ] || fail "libonnxruntime sha256 is $got, want $ORT_SHA256" "the npm package changed; do not use it until the new checksum is verified"
	mkdir -p "$DEPS/onnxruntime"
	install -m 0644 "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_LIB"
	did+=("onnxruntime $ORT_VERSION")
fi
ln -sfn "libonnxruntime.so.$ORT_VERSION" "$DEPS/onnxruntime/libonnxruntime.so"

# --- 3. pgvector --------------------------------------------------------------
ext_dir=$("$PG_CONFIG" --sharedir)/extension
if [ ! -f "$ext_dir/vector--$PGVECTOR_VERSION.sql" ] || [ ! -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
	mirror=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
		mirror=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
	fi
	[ -n "$mirror" ] || fail "no Debian mirror URI in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" "add the machine's Debian mirror to its apt sources"
	apt_dir="$DEPS/apt-trixie"
	rm -rf "$apt_dir"
	mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/src"
	echo "deb-src $mirror trixie main" >"$apt_dir/sources/trixie-src.list"
	apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
	log "fetching pgvector source from trixie"
	quiet apt-get "${apt_opts[@]}" update -q || fail "apt-get update of the private trixie source list" "check that $mirror serves trixie"
	(cd "$apt_dir/src" && quiet apt-get "${apt_opts[@]}" source --download-only pgvector) ||
		fail "apt-get source pgvector" "trixie's pgvector source package could not be fetched from $mirror"
	dsc=$(ls "$apt_dir/src"/pgvector_"$PGVECTOR_VERSION"*.dsc 2>/dev/null | head -n1)
	[ -n "$dsc" ] || fail "trixie no longer has pgvector $PGVECTOR_VERSION ($(ls "$apt_dir/src"))" "pin another version in scripts/setup.sh and test it"
	(cd "$apt_dir/src" && quiet dpkg-source --no-check -x "$dsc" pgvector) || fail "dpkg-source -x $dsc" "inspect $apt_dir/src"
	quiet make -C "$apt_dir/src/pgvector" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" ||
		fail "building pgvector" "see the compiler output above; postgresql-server-dev-$PG_MAJOR and build-essential are needed"
	quiet as_root make -C "$apt_dir/src/pgvector" PG_CONFIG="$PG_CONFIG" install || fail "installing pgvector" "run the install as root"
	rm -rf "$apt_dir"
	did+=("pgvector $PGVECTOR_VERSION")
fi

# --- 4. PostgreSQL -------------------------------------------------------------
pg_up() { pg_lsclusters -h 2>/dev/null | awk -v v="$PG_MAJOR" '$1==v && $2=="main" {print $4}' | grep -q online; }
if ! pg_up; then
	quiet as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start ||
		fail "starting PostgreSQL $PG_MAJOR" "see /var/log/postgresql/postgresql-$PG_MAJOR-main.log"
	did+=("postgresql started")
fi
# Installing the server headers can upgrade the server package and stop the cluster: wait for it.
psql_su() { as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 1 50); do
	psql_su -d postgres -tAc 'select 1' >/dev/null 2>&1 && break
	sleep 0.2
done
psql_su -d postgres -tAc 'select 1' >/dev/null 2>&1 || fail "connecting to PostgreSQL as postgres" "check pg_lsclusters and the server log"

if [ "$(psql_su -d postgres -tAc "select 1 from pg_roles where rolname='$DB_ROLE'")" != 1 ]; then
	psql_su -d postgres -c "create role $DB_ROLE login createdb" || fail "creating role $DB_ROLE" "check the server log"
	did+=("role $DB_ROLE")
fi
for db in template1 "$DB_NAME"; do
	if [ "$db" != template1 ] && [ "$(psql_su -d postgres -tAc "select 1 from pg_database where datname='$db'")" != 1 ]; then
		psql_su -d postgres -c "create database $db owner $DB_ROLE" || fail "creating database $db" "check the server log"
		did+=("database $db")
	fi
	have=$(psql_su -d "$db" -tAc "select extversion from pg_extension where extname='vector'")
	if [ -z "$have" ]; then
		psql_su -d "$db" -c "create extension vector" || fail "create extension vector in $db" "check that pgvector is installed for PostgreSQL $PG_MAJOR"
		did+=("vector extension in $db")
	elif [ "$have" != "$PGVECTOR_VERSION" ]; then
		psql_su -d "$db" -c "alter extension vector update to '$PGVECTOR_VERSION'" || fail "updating vector extension in $db" "check the server log"
		did+=("vector extension updated in $db")
	fi
done

if [ ${#did[@]} -eq 0 ]; then
	echo "setup: up to date"
else
	printf 'setup: done (%s)\n' "$(IFS=';'; echo "${did[*]}")"
fi
