#!/usr/bin/env bash
# The main job, end to end on real data: Fashion-MNIST from Debian's
# package, a LeNet5 warm-up, then a static pixel mask trained jointly with
# the network, ending with the accuracy-versus-Q table.
#
# Training takes about 10 minutes on two cores (the first build of Burn
# about 15 more). Outputs go to runs/ (override with SELMASK_RUNS=...).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${SELMASK_RUNS:-runs}"

# Data: Debian's package (about 30 MB), unless a data directory is given.
if [ -z "${SELMASK_DATA:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q dataset-fashion-mnist
fi

cargo build --locked --bin selmask
SELMASK=target/debug/selmask

# 1. Warm-up: LeNet5 alone (the paper's --use-warmup-net starts from it).
"$SELMASK" pretrain --dataset fashion_mnist --n-epochs 3 \
  --warmup-dir "$RUNS/models" --exp-dir "$RUNS"

# 2. A static pixel mask learned jointly with the network. A short schedule
# of the paper's method: lambda starts at 1 and grows by 1.5 whenever Q stops
# improving (patience 1), so Q falls from 1 to about 0.1 in 20 epochs.
"$SELMASK" train --dataset fashion_mnist --mask-type static --any-granularity pixel \
  --use-warmup-net 1 --warmup-dir "$RUNS/models" --exp-dir "$RUNS" \
  --n-repeats 1 --n-epochs 20 --lambda-init 1 --lambda-factor 1.5 --lambda-patience 1 \
  --lr 0.005 --input-drop-upscaling 0 --name main-job --overwrite

echo
echo "bench: one training epoch of LeNet5 + static pixel mask (60,000 images):"
"$SELMASK" bench train-epoch --epochs 1
