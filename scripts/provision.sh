#!/bin/sh
# Makes sure the Debian packages in scripts/debian-packages.txt (or the list file given) are
# installed: nothing to do when they all are; apt-get installs the missing ones when run as root;
# otherwise one line says the exact command to run, and the script fails.
set -eu
cd "$(dirname "$0")/.."
list=${1:-scripts/debian-packages.txt}
packages=$(sed -e 's/#.*//' "$list" | tr -s ' \t' '\n\n' | grep -v '^$' || true)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "provision: this is not a Debian-like system; install these packages' equivalents yourself:" $packages >&2
  exit 1
fi
# One dpkg-query for the whole list; a package dpkg has never heard of is missing too.
# shellcheck disable=SC2086 # one word per package
present=$(dpkg-query -W -f='${Package} ${Status}\n' $packages 2>/dev/null | awk '$NF == "installed" { print $1 }' || true)
missing=""
for package in $packages; do
  echo "$present" | grep -qx "$package" || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "provision: npm test needs Debian packages that are missing; run: sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
echo "provision: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
