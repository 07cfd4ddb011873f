"""Convert upstream demonstrations into the project's LeRobot dataset.

    python scripts/convert_dataset.py --from robocasa-hdf5 demo.hdf5 --out data/robocasa
    python scripts/convert_dataset.py --from groot-lerobot single_panda_gripper.TurnOffMicrowave --out data/groot

groot-lerobot reads GR00T's v2.x folders (meta/modality.json, episodes.jsonl) and LeRobot v3.0 datasets; state and
action are mapped by name (GR00T's RoboCasa order is known), cameras by key name. A LeRobot v3.0 dataset with our
camera keys also trains directly (train_vla.py --dataset DIR) and is read by feature name the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.embodiments import IMAGE_SIZE  # noqa: E402  (torch-free)
from contract.lookup import did_you_mean  # noqa: E402

FORMATS = ("robocasa-hdf5", "groot-lerobot")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="fmt", required=True, help=f"source format: {', '.join(FORMATS)}")
    parser.add_argument("src", help="HDF5 file, GR00T LeRobot folder (v2.x) or LeRobot v3.0 dataset")
    parser.add_argument("--out", required=True, help="output dataset folder (rerun to resume)")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--task", default=None, help="task name to record (default: from the source)")
    parser.add_argument("--max-episodes", type=int, default=None)
    args = parser.parse_args(argv)
    if args.fmt not in FORMATS:
        print(f"error: unknown format {args.fmt!r}{did_you_mean(args.fmt, FORMATS)}; valid: {', '.join(FORMATS)}",
              file=sys.stderr)
        return 2
    # lazy: the converters load `datasets` and pandas (~1 s); --help and argument errors stay quick
    if args.fmt == "robocasa-hdf5":
        from vla.data.convert_robocasa import convert_robocasa_hdf5 as convert
    else:
        from vla.data.convert_groot import convert_groot_lerobot as convert
    bar = tqdm(desc="episodes", unit="ep")
    try:
        n = convert(args.src, args.out, image_size=args.image_size, task=args.task, max_episodes=args.max_episodes,
                    progress=lambda _: bar.update())
    except (ValueError, FileNotFoundError) as e:
        bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    bar.close()
    print(f"{args.out}: {n} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
