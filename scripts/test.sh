#!/usr/bin/env bash
# The whole test suite (`npm test`): installs what it needs, then the contract lints, gen/ is fresh, the code type-checks, and jest passes.
set -euo pipefail
cd "$(dirname "$0")/.."
# What the suite needs comes first, so that a fresh clone needs nothing but `npm test`.
echo "== Debian packages (scripts/debian-packages.txt)"
sh scripts/provision.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
echo "== buf lint"
./node_modules/.bin/buf lint
echo "== gen/ is up to date with proto/"
tmp=$(mktemp -d)
cp -r gen "$tmp/gen"
bash scripts/generate.sh
if ! diff -r -x __pycache__ "$tmp/gen" gen; then
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
rm -rf "$tmp"
echo "== buf breaking against the last landed contract (.ci/contract-baseline)"
# Names and field numbers are a public contract: only additive changes may land. Move the
# baseline forward to the newest landed commit whenever the contract grows.
baseline=$(cat .ci/contract-baseline)
if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = "true" ] && ! git cat-file -e "$baseline^{commit}" 2>/dev/null; then
  echo "WARNING: shallow clone without the baseline commit $baseline: buf breaking cannot run here" >&2
else
  ./node_modules/.bin/buf breaking --against ".git#ref=$baseline"
fi
echo "== import cycles"
node scripts/check-import-cycles.js
echo "== typecheck"
./node_modules/.bin/tsc -p tsconfig.json --noEmit
./node_modules/.bin/tsc -p web/tsconfig.json
echo "== build"
sh scripts/build-if-stale.sh
echo "== jest"
./node_modules/.bin/jest "$@"
