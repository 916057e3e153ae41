#!/bin/sh
# runtime-packages.sh FILE... prints, one per line, the Debian packages that
# ship the shared libraries the given executables and libraries link directly
# (their NEEDED entries). The Dockerfile's runtime stage installs exactly
# these, and apt brings their own dependencies.
set -eu
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for f in "$@"; do
	# A static executable needs nothing.
	readelf -d "$f" 2>/dev/null | grep -q '(NEEDED)' || continue
	ldd "$f" >"$tmp"
	for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		# "libx.so.1 => /path/libx.so.1 (0x...)", or "/lib64/ld-linux-x86-64.so.2 (0x...)" for the loader.
		path=$(awk -v l="$lib" '($1 == l && $2 == "=>") { print $3; exit } (substr($1, length($1) - length(l)) == "/" l) { print $1; exit }' "$tmp")
		if [ -z "$path" ] || [ ! -e "$path" ]; then
			echo "runtime-packages: $f needs $lib, which the loader cannot find" >&2
			exit 1
		fi
		owner=$({ dpkg -S "$path" || dpkg -S "/usr$path" || dpkg -S "$(readlink -f "$path")"; } 2>/dev/null | head -n1)
		if [ -z "$owner" ]; then
			echo "runtime-packages: no Debian package ships $path (needed by $f)" >&2
			exit 1
		fi
		echo "${owner%%:*}"
	done
done | sort -u
