#!/usr/bin/env bash
# sluice in ../shared/bench/etl/run_bench.sh: bench_sluice.sh SRC_ROOT OUT_DIR THREADS
# Crawls SRC_ROOT (sampling, as a Glue crawler does) and converts it into OUT_DIR, which ends up
# holding year=/month=/day= partitions of zstd Parquet, like the peers' output.
set -euo pipefail
SRC=$1 OUT=$2
SLUICE=${SLUICE:-$HOME/.cache/sluice/target/release/sluice}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
common=(--database "sqlite://$WORK/catalog.db" --lake "file://$SRC" --curated-lake "file://$OUT")
"$SLUICE" "${common[@]}" crawl "" --no-verify --output json > "$WORK/crawl.json"
"$SLUICE" "${common[@]}" convert landing --dest out --output json
# Move the table's partitions to OUT_DIR's top, where the verifier looks; the quarantine (empty
# for this data) and the run's empty staging folders are not part of the output.
mv "$OUT"/out/landing/year=* "$OUT"/
rm -rf "$OUT/out" "$OUT/quarantine"
