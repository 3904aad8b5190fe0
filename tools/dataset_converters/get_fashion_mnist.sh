#!/usr/bin/env bash
# Put Fashion-MNIST where configs/cls/fashion_mnist/ read it (data/fashion_mnist),
# offline: from Debian's dataset-fashion-mnist package (the original IDX .gz
# files, 60k train + 10k test images). mmpretrain's FashionMNIST dataset reads
# the uncompressed IDX files and would try to download them otherwise.
#
#   bash tools/dataset_converters/get_fashion_mnist.sh [DEST]      (default DEST: data/fashion_mnist)
#
# Installs the package with apt-get when run as root and it is missing;
# otherwise says what to run. FASHION_MNIST_SRC overrides the source folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SRC=${FASHION_MNIST_SRC:-/usr/share/datasets/fashion-mnist}
DEST=${1:-data/fashion_mnist}
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y dataset-fashion-mnist || {
      apt-get update && apt-get install -y dataset-fashion-mnist; }
  else
    echo "Fashion-MNIST not found in $SRC. Install it with" >&2
    echo "  sudo apt-get install dataset-fashion-mnist   (Debian >= 11, Ubuntu >= 21.04)" >&2
    echo "or set FASHION_MNIST_SRC to a folder holding the four *-ubyte.gz files." >&2
    exit 1
  fi
fi
mkdir -p "$DEST"
for f in $FILES; do
  [ -s "$DEST/$f" ] || { gzip -dc "$SRC/$f.gz" > "$DEST/$f.part" && mv "$DEST/$f.part" "$DEST/$f"; }
done
echo "Fashion-MNIST ready in $DEST"
