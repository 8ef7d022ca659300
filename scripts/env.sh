# Build environment shared by the README's commands, CI and benchmarks (sourced, not run).
# The target directory lives outside the clone so that CI's fresh clones build warm; mold links
# when it is installed (`apt-get install mold`), and the flags are identical everywhere so
# the cache is never invalidated by a different RUSTFLAGS.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
if command -v mold >/dev/null 2>&1; then
  export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
