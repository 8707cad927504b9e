"""A torchvision model on a torchvision data set: ResNet-18 on CIFAR-10.

Needs the CIFAR-10 files on disk (the python version: <root>/cifar-10-batches-py/). Either copy
them there, or let torchvision download them once (about 170 MB) with --download:

    python examples/torchvision_cifar10.py --root data/ --download
    python examples/torchvision_cifar10.py --root data/            # later runs

The same study as a config file is examples/torchvision_cifar10.yaml
(`sparsity-search run examples/torchvision_cifar10.yaml`). On a GPU (`--device cuda`) the full
budget takes a few hours; `--smoke` runs 2 trials on 256 images to check the setup.
"""
import argparse
import sys

from search.api import run_search
from search.schema import ConfigError
from trainers.errors import SetupError

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--root", default="data", help="folder holding cifar-10-batches-py/")
parser.add_argument("--download", action="store_true", help="let torchvision fetch the data")
parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
parser.add_argument("--smoke", action="store_true", help="2 trials on a few images")
args = parser.parse_args()

data = {"name": "torchvision:CIFAR10", "root": args.root, "download": args.download,
        "val_fraction": 0.1, "batch_size": 128}
budget = {"search": {"n_trials": 60}, "dense": {"epochs": 30, "lr": 1e-3},
          "finetune": {"epochs": 3}}
if args.smoke:
    data["options"] = {"max_train": 256, "max_test": 64}
    budget = {"threads": 1, "cost": {"measure_latency": False},
              "search": {"n_trials": 2, "baseline_sparsities": [0.5], "baseline_bits": [8]},
              "dense": {"epochs": 1}, "finetune": {"epochs": 1}}

try:
    result = run_search(study="resnet18_cifar10", model="torchvision:resnet18", data=data,
                        device=args.device, **budget)
except (ConfigError, SetupError) as exc:   # e.g. no CIFAR-10 under --root
    # this script's switch for torchvision's download is --download
    hint = str(exc).replace("set `download: true` in the data section", "pass --download")
    sys.exit(f"error: {hint}")
print(result.front()[["trial", "accuracy", "test_accuracy", "flops", "energy_uj", "size_bytes"]])
