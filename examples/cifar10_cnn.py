"""CIFAR-10 with a CNN: the TinyTorch design summary's recipe, on tinytorch-vision. NOT MEASURED.

CIFAR-10 could not be downloaded where this project was measured, so this script has never been
run to completion on the real data set and no accuracy is claimed for it. The design summary
reports ~60-70% for a small CNN after a few epochs; treat that as unverified.

Recipe: DeepCNN (conv 32-32-pool-64-64-pool-128-pool, BatchNorm + ReLU, one Linear), AdamW with
warmup + cosine, random crops (padding 4) and horizontal flips, per-channel normalization.

Data: ``$TINYTORCH_DATA/cifar10/cifar-10-batches-py/`` (or ``-bin``), or ``--download`` (fetches
cifar-10-python.tar.gz from cs.toronto.edu and checks its sha256).

Usage: uv run python examples/cifar10_cnn.py [--epochs 15] [--download]
"""

from __future__ import annotations

import argparse

from tinytorch.core.datafiles import MissingDataError
from tinytorch.vision.train import TrainConfig, evaluate_checkpoint, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--model", default="deep_cnn", choices=["small_cnn", "deep_cnn", "wide_cnn", "mlp"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", default="cifar10_cnn.safetensors")
    parser.add_argument("--root", default=None)
    parser.add_argument("--download", action="store_true")
    args = parser.parse_args()

    config = TrainConfig(dataset="cifar10", model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, warmup=1.0, limit=args.limit)
    try:
        result = train(config, root=args.root, out=args.out, download=args.download, echo=print)
    except MissingDataError as err:  # one line with the download command, not a traceback
        raise SystemExit(f"error: {err}") from None
    print(f"CIFAR-10 test accuracy {result.test_accuracy:.2%} after {result.epochs} epochs")
    for row in evaluate_checkpoint(args.out, root=args.root).per_class:
        print(f"  {row['name']:<10} {row['accuracy']:.1%}")


if __name__ == "__main__":
    main()
