#!/usr/bin/env bash
# A CUDA 13.0 toolkit to build `--features cuda` with on a machine that has none (and no GPU),
# assembled from NVIDIA's PyPI wheels: nvcc (with its front end, cicc and the device
# library), the runtime, CCCL, NVRTC, cuBLAS and cuRAND. The driver library libcuda.so comes
# with a GPU's driver, so for linking only this script makes a stub of it, as the toolkit's own
# lib/stubs holds: every entry point cudarc's driver bindings name, with the driver's soname,
# so the real driver is the one loaded at run time. About 700 MB of downloads, once.
#
# Usage: scripts/cuda-toolkit.sh [DIR]   (default ~/.cache/sluice/cuda-13.0); then
#        export CUDA_HOME=DIR (scripts/cuda-check.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$HOME/.cache/sluice/cuda-13.0}"
if [ -x "$DIR/bin/nvcc" ] && [ -f "$DIR/lib/stubs/libcuda.so" ]; then
  echo "$DIR"
  exit 0
fi
WHEELS="$DIR.wheels"
mkdir -p "$WHEELS" "$DIR.unpack"
# 13.0: the CUDA whose driver and libraries the H200 machines this is checked on carry.
for spec in nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
    --platform manylinux2010_x86_64 -d "$WHEELS" "$spec" >&2
done
for wheel in "$WHEELS"/*.whl; do
  unzip -qo "$wheel" 'nvidia/cu13/*' -d "$DIR.unpack"
done
rm -rf "$DIR"
mv "$DIR.unpack/nvidia/cu13" "$DIR"
rm -rf "$DIR.unpack"
chmod +x "$DIR"/bin/* "$DIR"/nvvm/bin/*
# nvcc.profile looks for headers and libraries under targets/<arch>, as installers lay them out.
mkdir -p "$DIR/targets/x86_64-linux"
ln -sfn ../../include "$DIR/targets/x86_64-linux/include"
ln -sfn ../../lib "$DIR/targets/x86_64-linux/lib"
# The wheels carry only versioned libraries; the linker asks for the plain names.
(cd "$DIR/lib" && for lib in cudart cublas cublasLt nvrtc; do ln -sf "lib$lib.so.13" "lib$lib.so"; done &&
  ln -sf libcurand.so.10 libcurand.so)

# The driver stub, from the bindings of the cudarc that Cargo.lock pins. Every driver call returns
# a CUresult; the stub's answer is CUDA_ERROR_NO_DEVICE (100), should it ever be loaded.
cargo fetch --locked >&2
CUDARC=$(cargo metadata --format-version 1 --locked --all-features |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
BINDINGS="$(dirname "$CUDARC")/src/driver/sys/mod.rs"
mkdir -p "$DIR/lib/stubs"
grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$BINDINGS" | sed -E 's/^\s+fn (cu[A-Za-z0-9_]+)\(/int \1(void) { return 100; }/' |
  sort -u >"$DIR/lib/stubs/libcuda.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$DIR/lib/stubs/libcuda.so" "$DIR/lib/stubs/libcuda.c"
"$DIR/bin/nvcc" --version | tail -2 >&2
echo "$DIR"
