#!/usr/bin/env bash
# Issue 15's GPU figures in one call of a lent GPU machine (600 s), the cheap ones first, so that a slow
# torch.compile costs only the figures that need it:
#   1. convrnn_gpu_speed.py --compile none: rgc_intermediate at 224 px, training images/s and model-FLOP
#      utilisation, the eager fast path (bf16) against the plain path and a CORnet-S-like model (~125 s on an H200);
#   1b. the same, fast path only, at batch 128 (appended to convrnn.txt);
#   1c. the eager fast path with the whole training step captured in one CUDA graph (--cuda-graph: no host launch
#       overhead, no torch.compile): first its losses against eager steps' (--verify-graph), then images/s at
#       batch 64, 128 and 192 (convrnn_graphed.txt; 256 runs out of the H200's 140 GB);
#   1d. train_command_speed.py: zoo train itself (image folder, loading workers, the engine's checks) with --fast
#       --amp, its default determinism against --no-deterministic (train_command.txt);
#   2. convrnn_gpu_profile.py: where the eager fast path's training step spends its time (device time per
#      category: dense and depthwise convolution forward / backward-input / backward-weight, elementwise, copies;
#      the top ops and kernels);
#   2b. depthwise_conv_speed.py: the RGC gates' 7x7 depthwise convolutions alone, in each layout and dtype;
#   3. retina_fit_speed.py --device cuda --fit: BN-CNN training frames/s (plain vs fast) and a fit to
#      convergence (~80 s);
#   4. extraction_speed.py --device cuda --runs reference,after: scoring full-width rgc_intermediate on
#      cowley2023.V4 (reference path, then the GPU extraction's default GPU_FAST: float32, eager);
#   5. the compiled fast path (convrnn_gpu_speed.py, compile="step", the fast variant only) with what time the
#      call has left, then CUDA graphs (mode "reduce-overhead") if time remains still; each is skipped under 90 s.
# Every step's limit is cut to what is left of GPU_CHECK_BUDGET (570 s) inside the call's 600 s. Each step prints to
# $OUT/<step>.txt as well (8 files with device.txt; the device returns at most 8). GPU_CHECK_ONLY=name,name runs
# only the steps named (convrnn, convrnn_graphed, train_command, profile, depthwise, retina, extraction, convrnn_compiled,
# convrnn_graphs).
#
# Here, once (needs pip's registry and ../shared/data): copies what the GPU machine lacks into .device/ (git-ignored):
#     bash benchmarks/perf/gpu_check.sh prepare
# Then one device call, from the repository root:  command "bash benchmarks/perf/gpu_check.sh",
#     carry [".device"], timeout_s 600 (the steps end by GPU_CHECK_BUDGET, 570 s).
# Locally, a CPU smoke run of the same steps at toy sizes (about a minute; the compiled step with the aot_eager
# backend, CUDA graphs skipped):  GPU_CHECK_SMOKE=1 bash benchmarks/perf/gpu_check.sh
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

budget=${GPU_CHECK_BUDGET:-570}
only=",${GPU_CHECK_ONLY:-},"  # e.g. GPU_CHECK_ONLY=depthwise,profile: only those steps
step() {  # name, time limit (s; cut to what the call has left, skipped under 20 s), command...
    local name=$1 limit=$2 left=$((budget - SECONDS - 15)); shift 2
    [ "$only" = ",," ] || [[ "$only" == *",$name,"* ]] || { echo "== $name: not in GPU_CHECK_ONLY"; return; }
    [ "$left" -lt "$limit" ] && limit=$left
    [ "$limit" -ge 20 ] || { echo "== $name: skipped, ${left} s left"; return; }
    echo "== $name: $* (limit ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}
rest() {  # name, command...: all the time the call has left, skipped under 90 s
    local name=$1 left=$((budget - SECONDS - 15)); shift
    [ "$left" -ge 90 ] || { echo "== $name: skipped, ${left} s left"; return; }
    step "$name" "$left" "$@"
}
if [ -n "${GPU_CHECK_SMOKE:-}" ]; then  # the same steps at toy sizes on the CPU
    toy=(--device cpu --image-size 64 --batch-size 4 --width 0.25)
    convrnn=("${toy[@]}" --iters 2 --warmup 1); large=(--batch-size 8)
    profile=("${toy[@]}" --steps 1); depthwise=("${toy[@]}" --iters 1)
    retina=(--device cpu --steps 1 --fast-steps 2); extraction=(--device cpu --images 8 --batch-size 8)
    train_command=(--device cpu --model rgc_shallow --image-size 32 --batch-size 4 --steps 4 --log-every 2 --no-fast)
    compiled=(--backend aot_eager)  # Dynamo and AOTAutograd without Inductor (whose compile takes minutes)
else
    convrnn=(--iters 5 --warmup 2); large=(--batch-size 128)
    profile=(--device cuda --steps 1 --warmup 3); depthwise=(--device cuda)
    retina=(--device cuda --fit); extraction=(--device cuda); train_command=(--device cuda)
    compiled=(--backend inductor)
fi
speed=benchmarks/perf/convrnn_gpu_speed.py
step convrnn 180 python3 $speed --compile none "${convrnn[@]}"
step convrnn 90 python3 $speed --compile none --skip plain,cornet "${convrnn[@]}" "${large[@]}"  # host overhead amortised
if [ -n "${GPU_CHECK_SMOKE:-}" ]; then
    echo "== convrnn_graphed: skipped (CUDA graphs need a GPU)"
else
    step convrnn_graphed 90 python3 $speed --verify-graph
    for batch in 64 128 192; do
        step convrnn_graphed 90 python3 $speed --compile none --skip plain,cornet --cuda-graph "${convrnn[@]}" --batch-size $batch
    done
fi
step train_command 180 python3 benchmarks/perf/train_command_speed.py "${train_command[@]}"
step profile 90 python3 benchmarks/perf/convrnn_gpu_profile.py "${profile[@]}"
step depthwise 60 python3 benchmarks/perf/depthwise_conv_speed.py "${depthwise[@]}"
step retina 120 python3 benchmarks/perf/retina_fit_speed.py "${retina[@]}"
step extraction 150 python3 benchmarks/perf/extraction_speed.py --runs reference,after "${extraction[@]}"
rest convrnn_compiled python3 $speed --skip plain,cornet --compile step "${convrnn[@]}" "${compiled[@]}"
if [ -n "${GPU_CHECK_SMOKE:-}" ]; then
    echo "== convrnn_graphs: skipped (CUDA graphs need a GPU)"
else
    rest convrnn_graphs python3 $speed --skip plain,cornet --compile step --cudagraphs --iters 5 --warmup 3
fi
date -u | tee -a "$out/device.txt"
