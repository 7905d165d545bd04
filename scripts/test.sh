#!/usr/bin/env bash
# The whole test suite: the contract lints, gen/ is fresh, the code type-checks, and jest passes.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== buf lint"
./node_modules/.bin/buf lint
echo "== gen/ is up to date with proto/"
tmp=$(mktemp -d)
cp -r gen "$tmp/gen"
./node_modules/.bin/buf generate
if ! diff -r -x __pycache__ "$tmp/gen" gen; then
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
rm -rf "$tmp"
echo "== typecheck"
./node_modules/.bin/tsc -p tsconfig.json --noEmit
echo "== build"
./node_modules/.bin/tsc -p tsconfig.build.json
echo "== jest"
./node_modules/.bin/jest "$@"
