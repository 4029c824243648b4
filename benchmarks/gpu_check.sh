#!/usr/bin/env bash
# The GPU measurements of issue 15, in parts, each with its own time limit (a failing part does not
# stop the next):
#   test       the fast ops' tests on CUDA (tests/test_fast_ops.py)                         ~20 s
#   graph      eager search steps against CUDA-graph replays (benchmarks/cuda_graph_step.py)  ~70 s
#   bench      pdarts bench --device cuda: every configuration, reference and default,
#              two rounds (24 processes)                                                      ~360 s
#   epoch      one epoch of search stage 1 at the paper's size (batch 96) and the projection
#              of the whole CIFAR-10 search with its peak memory (benchmarks/search_epoch.py) ~170 s
#   precision  bf16 against fp32 (both channels_last): stage 1 at batch 96 and the training steps ~80 s
#   graphed    the epoch of `epoch` with search.common.cuda_graph, and its test on CUDA
#              (tests/search/test_graphs.py)                                         not run yet
# Times as measured on an H200 (2026-12-04). Usage: benchmarks/gpu_check.sh [PART...] (default: all,
# about 12 minutes: more than one device call allows, so name parts). Writes NAME.json and NAME.log
# of each part to ${OUT:-.}. The machine needs torch, numpy, pyyaml, tqdm, pytest and jsonschema
# (with its needs); the package runs from the source tree (PYTHONPATH), nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
graphed() {
  python3 -m pytest -q -p no:cacheprovider tests/search/test_graphs.py &&
    python3 benchmarks/search_epoch.py --device cuda --batch-size 96 --sample-steps 3 --cuda-graph \
      --out "$out/graphed.json"
}
export -f graphed
export out
bench="python3 -m pdarts bench --device cuda --steps 5 --warmup 2"
status=0
for part in "${@:-test graph bench epoch precision graphed}"; do
  for name in $part; do
    case $name in
      test) command=(python3 -m pytest -q -p no:cacheprovider tests/test_fast_ops.py); limit=60 ;;
      graph) command=(python3 benchmarks/cuda_graph_step.py --steps 8 --out "$out/graph.json"); limit=120 ;;
      bench) command=($bench --rounds 2 --modes reference default --out "$out/bench.json" --configs
                      stage1-b32 stage1-b96 stage2-b32 stage3-b32 cifar-train-b32 imagenet-train-b8); limit=420 ;;
      epoch) command=(python3 benchmarks/search_epoch.py --device cuda --batch-size 96 --sample-steps 8
                      --out "$out/epoch.json"); limit=240 ;;
      precision) command=($bench --rounds 1 --modes channels_last bf16+channels_last --out "$out/precision.json"
                          --configs stage1-b96 cifar-train-b32 imagenet-train-b8); limit=120 ;;
      graphed) command=(bash -c graphed); limit=240 ;;
      *) echo "unknown part $name: use test, graph, bench, epoch, precision or graphed" >&2; exit 2 ;;
    esac
    echo "== $name (at most $limit s)"
    timeout "$limit" "${command[@]}" 2>&1 | tee "$out/$name.log" || status=1
  done
done
exit $status
