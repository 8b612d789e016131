#!/usr/bin/env bash
# Joins feature bundles that travelled to a lent GPU machine in parts (called by gpu_run.sh).
# One call's carry is 64 MiB with the repository, and RAVDESS's bundle with speed and noise copies is 66.2 MB,
# so it travels over two calls back to back: `split -b 34000000 BUNDLE runs/transfer/NAME.part-` here, each
# part carried by one call (runs/ is kept on a warm machine between calls), with `sha256sum BUNDLE` in
# runs/transfer/NAME.sha256. This writes .gpu/NAME from every complete set and checks it against its sum.
#   bash models/join_parts.sh [TRANSFER_DIR] [BUNDLE_DIR]
set -u
transfer="${1:-runs/transfer}"
bundles="${2:-.gpu}"
for sum in "$transfer"/*.sha256; do
  [ -e "$sum" ] || continue
  name="$(basename "$sum" .sha256)"
  mkdir -p "$bundles"
  cat "$transfer/$name".part-* > "$bundles/$name.partial" 2>/dev/null \
    || { echo "join_parts: no parts of $name in $transfer"; exit 1; }
  expected="$(cut -d' ' -f1 "$sum")"
  actual="$(sha256sum "$bundles/$name.partial" | cut -d' ' -f1)"
  if [ "$expected" != "$actual" ]; then
    rm -f "$bundles/$name.partial"
    echo "join_parts: $name: the joined parts do not match its sha256 (a part missing or damaged); nothing written"
    exit 1
  fi
  mv "$bundles/$name.partial" "$bundles/$name"
  echo "join_parts: $bundles/$name ($(stat -c %s "$bundles/$name") bytes, sha256 checked)"
done
