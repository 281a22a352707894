#!/usr/bin/env bash
# Static pixel mask on Fashion-MNIST within an hour of training on two
# cores: warm-up, the paper's lambda schedule, then the chosen points of the
# curve fine-tuned with their mask frozen. Prints the time of each stage
# and the test accuracy at Q <= 0.06 and Q <= 0.11 (checkpoints chosen on
# validation accuracy). Usage: scripts/fmnist-static-60min.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-runs/fmnist-60min}"
cargo build --locked --bin selmask
# A copy, so that rebuilding the project meanwhile cannot change the binary
# between stages.
mkdir -p "$RUNS"
cp "${CARGO_TARGET_DIR:-target}/debug/selmask" "$RUNS/selmask"
SELMASK="$RUNS/selmask"
start=$(date +%s)
stage() { echo "== $1 (t = $(( $(date +%s) - start )) s)"; }

stage "warm-up: LeNet5, 10 epochs"
"$SELMASK" pretrain --dataset fashion_mnist --n-epochs 10 --warmup-dir "$RUNS/models" --exp-dir "$RUNS" --quiet

stage "joint training: lambda 1, x1.5 after 4 epochs without Q improvement, 80 epochs"
"$SELMASK" train --dataset fashion_mnist --mask-type static --any-granularity pixel \
  --use-warmup-net 1 --warmup-dir "$RUNS/models" --exp-dir "$RUNS" --name schedule \
  --n-repeats 1 --n-epochs 80 --lambda-init 1 --lambda-factor 1.5 --lambda-patience 4 \
  --lr 0.005 --input-drop-upscaling 0 --checkpoint-qloss-interval 0.01 --overwrite --quiet
RUN="$RUNS/fashion_mnist/static/schedule/run_0"

for budget in 0.06 0.11; do
  stage "fine-tuning the best checkpoint with Q <= $budget (mask frozen), 8 epochs"
  "$SELMASK" train --dataset fashion_mnist --mask-type static --any-granularity pixel \
    --init-checkpoint "$RUN" --init-max-q "$budget" --freeze-mask --exp-dir "$RUNS" \
    --name "finetune-q$budget" --n-repeats 1 --n-epochs 8 --input-drop-upscaling 0 --overwrite --quiet
done
stage "done"
