"""Training throughput: samples/s per preset, images through the backbone vs cached backbone features, in one run.

    python scripts/benchmark_train.py                       # CPU: tiny and small presets, synthetic 128px data
    python scripts/benchmark_train.py --device cuda --presets groot-n1.5 --backbone /models/Qwen3-VL-2B-Instruct \\
        --dataset data/robocasa --batch-size 32             # full size on a GPU (bf16 + TF32)

Each measurement is a real training run (python train_vla.py code path) in a temp directory; the first
`--warmup` steps are excluded, and the cache build is reported separately as a one-time cost.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla.train.cli import parse_args  # noqa: E402
from vla.train.logger import read_metrics  # noqa: E402


def measure(preset: str, cached: bool, dataset: Path, out: Path, args) -> dict:
    """One timed run; samples/s over the steps after warmup (from the per-step log)."""
    # lazy, as torch in main: --help stays torch-free
    from vla.train.preflight import plan_run
    from vla.train.workspace import Workspace

    steps = args.warmup + args.steps
    argv = ["--preset", preset, "--dataset", str(dataset), "--output", str(out), "--steps", str(steps),
            "--batch-size", str(args.batch_size), "--log-every", "1", "--save-every", str(steps), "--wandb", "false",
            "--device", args.device, "--num-workers", str(args.num_workers), "--run-name", f"{preset}-{cached}",
            "--cache-dir", str(out / "cache")]
    if args.backbone:
        argv += ["--backbone", args.backbone]
    if cached:
        argv.append("--cache-features")
    train_cfg, model_cfg = parse_args(argv)
    workspace = Workspace(plan_run(train_cfg, model_cfg))
    started = time.perf_counter()
    result = workspace.run()
    wall = time.perf_counter() - started
    rows = [r for r in read_metrics(result.run_dir) if r["step"] > args.warmup]
    seconds = sum(args.batch_size / r["samples_per_s"] for r in rows)
    heads = sum(p.numel() for p in workspace.model.trainable_parameters())
    return {
        "preset": preset, "features": "cached" if cached else "images", "batch_size": args.batch_size,
        "timed_steps": len(rows), "samples_per_s": len(rows) * args.batch_size / seconds,
        "setup_s": wall - result.loop_s,  # model build + cache build when not already on disk
        "final_loss": result.final_loss, "trainable_params": heads,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small", help="comma-separated model presets")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--backbone", default=None, help="override the presets' backbone (name or Qwen3-VL directory)")
    p.add_argument("--dataset", default=None, help="LeRobot dataset (default: synthetic episodes in a temp dir)")
    p.add_argument("--image-size", type=int, default=128, help="synthetic data image size")
    p.add_argument("--episodes", type=int, default=6, help="synthetic episodes")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        dataset = Path(args.dataset) if args.dataset else None
        if dataset is None:
            from vla.data.synthetic import write_synthetic_dataset

            dataset = write_synthetic_dataset(tmp / "demos", num_episodes=args.episodes, length=60,
                                              image_size=args.image_size,
                                              tasks=("CoffeePressButton", "TurnOffMicrowave", "PnPCabToCounter"))
        results = []
        for preset in args.presets.split(","):
            for cached in (False, True):
                row = measure(preset, cached, dataset, tmp / "runs", args)
                results.append(row)
                print(f"{preset:>10} {row['features']:>6}: {row['samples_per_s']:8.1f} samples/s "
                      f"(batch {row['batch_size']}, {row['timed_steps']} steps)",
                      flush=True)
            images, cached = results[-2]["samples_per_s"], results[-1]["samples_per_s"]
            print(f"{preset:>10} cached/images speed-up: {cached / images:.1f}x", flush=True)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'}, " \
             f"{torch.get_num_threads()} threads"
    summary = {"device": device, "torch": torch.__version__, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
