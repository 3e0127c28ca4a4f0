#!/usr/bin/env bash
# make-bundle.sh [--no-commit] [--crash] VERSION [OUT]: build an OTA bundle
# (tar.gz) of device/examples/hello-worker at VERSION, for the README's
# demo and the tests:
#
#   run               started by the hook (device/examples/ota-hook/run-slot.sh)
#   bin/hello-worker  built with -X main.version=VERSION: it serves hello.version
#   VERSION           the version, one line
#
# run sets BOSUN_OTA_COMMIT=1, so the new hello-worker commits its slot once
# it serves. --no-commit leaves that out: the device reverts at the commit
# timeout. --crash makes run exit at once (it never commits either).
# OUT defaults to .dev/bundles/hello-VERSION.tar.gz. Prints OUT.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
commit=1 crash=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --no-commit) commit=0; shift ;;
    --crash) crash=1; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "make-bundle: unknown flag $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: scripts/make-bundle.sh [--no-commit] [--crash] VERSION [OUT]" >&2; exit 2; }
version=$1
[[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]] ||
  { echo "make-bundle: VERSION $version is not a semantic version (e.g. 2.0.0)" >&2; exit 2; }
out=${2:-$root/.dev/bundles/hello-$version.tar.gz}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/bin"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" \
  -o "$work/bundle/bin/hello-worker" ./device/examples/hello-worker)
printf '%s\n' "$version" >"$work/bundle/VERSION"
{
  echo '#!/bin/sh'
  echo "# hello-worker $version, run from its OTA slot (scripts/make-bundle.sh)"
  if ((crash)); then
    echo 'echo "hello-worker '"$version"': crashing at start (a --crash bundle)" >&2'
    echo 'exit 1'
  else
    ((commit)) && echo 'export BOSUN_OTA_COMMIT=1'
    echo 'exec "$(dirname "$0")/bin/hello-worker"'
  fi
} >"$work/bundle/run"
chmod 755 "$work/bundle/run" "$work/bundle/bin/hello-worker"
tar -C "$work/bundle" --owner=0 --group=0 --numeric-owner -czf "$out" run VERSION bin
printf '%s\n' "$out"
