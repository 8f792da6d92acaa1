#!/usr/bin/env bash
# The GPU checks (fast path, CUDA-graph step, recording cost) in one script, for a lent GPU (about 4 minutes on an H200):
#   1. tests/test_gpu.py: the CUDA fast path gives the CPU's batches, probabilities and file layout, and the
#      CUDA-graph training step trains like the eager one;
#   2. the CIFAR-sized ResNet-32 recipe (Fashion-MNIST padded to 32x32x3 in CIFAR's pickle layout, 50,000 train /
#      10,000 test): the standard path (DataLoader, 8 workers, eager) against the fast path, phase by phase;
#   3. runner.py itself with --record none / eval / train: the recording overhead of the real entry point;
#   4. the neighbour agreement at ImageNet size (1.28M samples, 2,048 features) against a ResNet-50 epoch.
# Usage: bash benchmarks/gpu_check.sh OUT_DIR [FASHION_DIR]   (FASHION_DIR: where the idx .gz files are)
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [FASHION_DIR]}; fashion=${2:-}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
timeout 150 $py -m pytest -q -x tests/test_gpu.py 2>&1 | tail -40 | tee "$out/test_gpu.txt"
data=$(mktemp -d)
$py benchmarks/make_cifar_like.py "$data" $fashion || exit 1
common=(--dataset cifar10 --data "$data" --net_type resnet --depth 32 --max_train 50000 --max_test 10000
        --device cuda --threads 8 --skip ddp)
timeout 200 $py benchmarks/bench_paths.py "${common[@]}" --epochs 2 --num_workers 8 \
    --paths standard,standard_graphs,fast,fast_graphs,fast_amp_graphs --out "$out/bench_paths_gpu.json" 2>&1 | tail -12
timeout 120 $py benchmarks/bench_paths.py "${common[@]}" --epochs 3 --skip paths --records none,eval,train \
    --out "$out/bench_records_gpu.json" 2>&1 | tail -12
timeout 240 $py benchmarks/bench_neighbours_gpu.py --out "$out/bench_neighbours_gpu.json" 2>&1 | tail -20
