#!/usr/bin/env bash
# Issue 15's GPU figures in one call of a lent GPU machine (about 8 minutes on an H100/H200):
#   1. convrnn_gpu_speed.py: rgc_intermediate at 224 px, bf16, training images/s and model-FLOP utilisation,
#      the fast path against the plain path and the CORnet-S-like model;
#   2. retina_fit_speed.py --device cuda --fit: BN-CNN training frames/s (plain vs fast) and a fit to convergence;
#   3. extraction_speed.py --device cuda: scoring full-width rgc_intermediate on cowley2023.V4 (reference path,
#      the float32 eager fast path GPU_FAST, to_fast()'s bfloat16 defaults without torch.compile).
#
# Here, once (needs pip's registry and ../shared/data): copies what the GPU machine lacks into .device/ (git-ignored):
#     bash benchmarks/perf/gpu_check.sh prepare
# Then one device call, from the repository root:  command "bash benchmarks/perf/gpu_check.sh",
#     carry [".device"], timeout_s 600 (the steps end by GPU_CHECK_BUDGET, 570 s).  Each step prints to $OUT/<step>.txt as well.
# Locally, a CPU smoke run of the same plumbing at toy sizes:  GPU_CHECK_SMOKE=1 bash benchmarks/perf/gpu_check.sh
#
# Why the wheels: that machine's python3 has a CUDA torch, xarray, h5py, timm, scikit-learn, pandas and tqdm, but not
# netCDF4/cftime (the V4 assembly is netCDF) or SQLAlchemy (scores carry the records' tables). neurozoo itself goes
# on the path through a symlink (no pip install there); nothing is fetched at run time.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
device_dir="$root/.device"
wheels=(netCDF4==1.7.5.1.post1 cftime==1.6.6.1 SQLAlchemy==2.1.9)

if [ "${1:-}" = prepare ]; then
    mkdir -p "$device_dir/whl" "$device_dir/data"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$device_dir/whl" "${wheels[@]}" || exit 1
    cp -r "${NEUROZOO_SHARED_DATA:-$root/../shared/data}/v4_cowley2023" "$device_dir/data/" || exit 1
    du -sh "$device_dir"
    exit 0
fi

cd "$root"
out=${OUT:-$device_dir/out}
mkdir -p "$out"
work=$(mktemp -d)
if [ -z "${GPU_CHECK_SMOKE:-}" ]; then
    [ -d "$device_dir/whl" ] || { echo "no $device_dir/whl: run 'bash benchmarks/perf/gpu_check.sh prepare' first" >&2; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$device_dir"/whl/*.whl || exit 1
    export NEUROZOO_SHARED_DATA="$device_dir/data"
fi
mkdir -p "$work/nz" && ln -sfn "$root" "$work/nz/neurozoo"
export PYTHONPATH="$work/nz:$work/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    NEUROZOO_HOME="$work/home" NEUROZOO_CACHE="$work/cache"

{ date -u; nvidia-smi 2>&1 | head -15
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; } 2>&1 | tee "$out/device.txt"

step() {  # name, time limit (s), command...
    local name=$1 limit=$2; shift 2
    echo "== $name: $* (limit ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}
if [ -n "${GPU_CHECK_SMOKE:-}" ]; then
    step convrnn 300 python3 benchmarks/perf/convrnn_gpu_speed.py --device cpu --image-size 64 --batch-size 4 \
        --width 0.25 --iters 2 --warmup 1 --compile none
    step retina 300 python3 benchmarks/perf/retina_fit_speed.py --device cpu --steps 1 --fast-steps 2
    step extraction 300 python3 benchmarks/perf/extraction_speed.py --images 8 --batch-size 8 --runs reference,after
else
    step convrnn 240 python3 benchmarks/perf/convrnn_gpu_speed.py
    step retina 150 python3 benchmarks/perf/retina_fit_speed.py --device cuda --fit
    step extraction 150 python3 benchmarks/perf/extraction_speed.py --device cuda --runs reference,after,eager
    # What time the call has left goes to two fast-path variants that may raise MFU (fast path only; each is
    # skipped when under 90 s remain): CUDA graphs against launch overhead, and a larger batch.
    budget=${GPU_CHECK_BUDGET:-570}
    for extra in "graphs --cudagraphs" "batch256 --batch-size 256"; do
        left=$((budget - SECONDS - 15))
        [ "$left" -ge 90 ] || { echo "== ${extra%% *}: skipped, ${left} s left"; continue; }
        step "convrnn_${extra%% *}" "$left" python3 benchmarks/perf/convrnn_gpu_speed.py --skip plain,cornet \
            ${extra#* }
    done
fi
date -u | tee -a "$out/device.txt"
