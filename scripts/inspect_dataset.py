"""Summarize a dataset and write a contact sheet (PNG) and one episode's video (MP4).

    python scripts/inspect_dataset.py data/demos [--out DIR] [--episode 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla.data.inspect import contact_sheet, episode_video, summary  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="dataset folder")
    p.add_argument("--out", default=None, help="where to write the PNG/MP4 (default: next to the dataset)")
    p.add_argument("--episode", type=int, default=0, help="episode for the video")
    p.add_argument("--embodiment", default="robocasa_panda_omron")
    args = p.parse_args(argv)
    from vla.data.dataset import open_dataset  # lazy: imports torch; --help stays torch-free

    root = Path(args.root)
    try:
        ds = open_dataset(root, embodiment=args.embodiment)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 0 <= args.episode < ds.meta.total_episodes:
        print(f"error: --episode {args.episode} out of range; dataset has episodes 0..{ds.meta.total_episodes - 1}",
              file=sys.stderr)
        return 2
    print(summary(root))
    out = Path(args.out) if args.out else root.parent
    out.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(ds, out / f"{root.name}_contact_sheet.png")
    video = episode_video(ds, out / f"{root.name}_episode{args.episode}.mp4", args.episode, fps=ds.fps)
    print(f"wrote {sheet}\nwrote {video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
