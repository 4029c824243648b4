#!/usr/bin/env bash
# The GPU measurements of issue 15, in parts, each with its own time limit (a failing part does not
# stop the next):
#   test       the fast ops' and the graphed steps' tests on CUDA (tests/test_fast_ops.py,
#              tests/search/test_graphs.py)                                                   ~35 s
#   graph      pdarts bench --device cuda on the four search configurations: reference, default
#              and default + cuda_graph (the library's graphed step), two rounds           ~7.5 min
#   bench      pdarts bench --device cuda: every configuration, reference and default,
#              two rounds (24 processes)                                                     ~6 min
#   epoch      one epoch of search stage 1 at the paper's size (batch 96) and the projection
#              of the whole CIFAR-10 search with its peak memory (benchmarks/search_epoch.py) ~3 min
#   graphed    the same epoch with search.common.cuda_graph                                  ~80 s
#   precision  bf16 against fp32 (both channels_last): stage 1 at batch 96 and the training steps ~80 s
#   prototype  eager steps against CUDA-graph replays, outside the library
#              (benchmarks/cuda_graph_step.py)                                              ~110 s
# Times as measured on an H200 (2026-12-04, two sessions). Usage: benchmarks/gpu_check.sh PART...
# (all of them take longer than one device call allows; "test graph" took 8 minutes). Writes
# PART.json and PART.log to ${OUT:-.}. The machine needs torch, numpy, pyyaml, tqdm, pytest and
# jsonschema (with its needs); the package runs from the source tree (PYTHONPATH), nothing is
# installed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
bench="python3 -m pdarts bench --device cuda --steps 5 --warmup 2"
search="stage1-b32 stage1-b96 stage2-b32 stage3-b32"
epoch="python3 benchmarks/search_epoch.py --device cuda --batch-size 96"
parts=" test graph bench epoch graphed precision prototype "
for name in "${@:-test}"; do  # every name checked before anything runs
  [[ $parts == *" $name "* ]] || { echo "unknown part $name: use one of$parts" >&2; exit 2; }
done
status=0
for name in "${@:-test}"; do
  case $name in
    test) command=(python3 -m pytest -q -p no:cacheprovider tests/test_fast_ops.py tests/search/test_graphs.py)
          limit=120 ;;
    graph) command=($bench --rounds 2 --modes reference default bf16+channels_last+cuda_graph
                    --out "$out/graph.json" --configs $search); limit=540 ;;
    bench) command=($bench --rounds 2 --modes reference default --out "$out/bench.json" --configs
                    $search cifar-train-b32 imagenet-train-b8); limit=480 ;;
    epoch) command=($epoch --sample-steps 8 --out "$out/epoch.json"); limit=240 ;;
    graphed) command=($epoch --sample-steps 3 --cuda-graph --out "$out/graphed.json"); limit=240 ;;
    precision) command=($bench --rounds 1 --modes channels_last bf16+channels_last --out "$out/precision.json"
                        --configs stage1-b96 cifar-train-b32 imagenet-train-b8); limit=120 ;;
    prototype) command=(python3 benchmarks/cuda_graph_step.py --steps 8 --out "$out/prototype.json"); limit=180 ;;
  esac
  echo "== $name (at most $limit s)"
  timeout "$limit" "${command[@]}" 2>&1 | tee "$out/$name.log" || status=1
done
exit $status
