#!/usr/bin/env bash
# Installs what building and testing Cairn needs on a Debian 12 machine, idempotently:
# the Debian packages listed in tools/deps/apt-packages.txt and the Go modules in go.mod.
# Safe to run again: it only calls apt-get when a listed package is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' tools/deps/apt-packages.txt | awk '{print $1}')
missing=()
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them yourself)" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
