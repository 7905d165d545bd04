#!/usr/bin/env bash
# Regenerates gen/ from proto/: TypeScript (protoc-gen-es) for every proto, Python (protoc +
# grpc_python_plugin) for what Python clients need (buf.gen.python.yaml says why).
set -euo pipefail
cd "$(dirname "$0")/.."
./node_modules/.bin/buf lint
./node_modules/.bin/buf generate
./node_modules/.bin/buf generate --template buf.gen.python.yaml --path proto/keypool --path proto/google
