#!/bin/sh
# `npm start` runs this first: it compiles dist/ only when a source is newer than the last build,
# so that a start with nothing changed costs what `node dist/src/main.js` costs. An installed
# package has dist/ and no sources: nothing to do.
set -eu
cd "$(dirname "$0")/.."
stamp=dist/.build-stamp
sources=""
for source in src gen/ts web scripts/build-dashboard.mjs tsconfig.json tsconfig.build.json package.json; do
  [ -e "$source" ] && sources="$sources $source"
done
[ -d src ] || exit 0
# shellcheck disable=SC2086 # $sources is a list of paths without spaces
if [ -f "$stamp" ] && [ -f dist/src/main.js ] && [ -f dist/web/index.html ] && [ -z "$(find $sources -newer "$stamp" -print | head -n 1)" ]; then
  exit 0
fi
if [ ! -x node_modules/.bin/tsc ]; then
  echo "keypool: dist/ is missing or older than src/, and TypeScript is not installed: run 'npm ci' (with dev dependencies), or run the installed package's 'keypool' bin" >&2
  exit 1
fi
# The stamp is taken before compiling: a file saved during the build is newer and builds next time.
mkdir -p dist
touch "$stamp.next"
# JavaScript whose source is gone would still run, and be packed: remove it before compiling.
for built in $(find dist/src dist/gen -name '*.js' 2>/dev/null); do
  source=${built#dist/}
  [ -e "${source%.js}.ts" ] || rm -f "$built" "$built.map"
done
node_modules/.bin/tsc -p tsconfig.build.json
node scripts/build-dashboard.mjs
node scripts/mark-bins-executable.js
mv "$stamp.next" "$stamp"
