#!/usr/bin/env bash
# Regenerates gen/ from proto/: TypeScript (protoc-gen-es) and Python (protoc + grpc_python_plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
./node_modules/.bin/buf lint
./node_modules/.bin/buf generate
