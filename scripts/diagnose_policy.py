"""The diagnosis ladder: can the stack memorize, does more data help, what does the policy look at, do its features
locate the target.

    python scripts/diagnose_policy.py memorize [--task CoffeePressButton] [--steps 1500] [-- TRAIN FLAGS]
    python scripts/diagnose_policy.py demos --dataset data/pool128 [--demos 5,20,50] [--steps 2000] [-- TRAIN FLAGS]
    python scripts/diagnose_policy.py controls --checkpoint DIR [--episodes 20] [--task all]
    python scripts/diagnose_policy.py failures --checkpoint DIR [--episodes 20] [--task all]
    python scripts/diagnose_policy.py probe [--backbones tiny-grounded,tiny] [--image-sizes 128,192,256] [--layers 4]
                                            [--tokens image,text,point] [--readouts ridge,attention]
                                            [--frames all|before-move|first:K]

memorize  one scripted demo, trained without augmentation until it is memorized, then replayed in closed loop on
          its own scene (`rollout.py --demo-seeds`); also its open-loop action error. Fails: the control loop,
          normalization or chunk execution is broken, or training is too short to fit even one demo.
demos     the same training on the first N demos of each task for several N; open-loop action error on demos
          none of them trained on. Falls as N grows: the policy generalizes across scenes; flat: it does not.
controls  held-out success as trained, with the cameras blanked, and with the state held at its midpoint. The
          drop says how much the policy relies on each input.
failures  where held-out episodes go wrong: per episode the gripper's closest approach to the task's target (the
          button, or the object to pick), whether the button was pressed / the object reached the counter, and how
          far the target sat from its average place. "tracking" is the slope of where the gripper got closest
          against where the target was (across episodes, horizontal plane): ~1 the policy goes where the target is,
          ~0 it replays an average trajectory whatever the cameras show. For PnPCabToCounter also the funnel:
          how many episodes got the gripper near the object, lifted it, put it on the counter, let go.
probe     do a frozen backbone's features say where the task's target is? Ridge regressions from the image
          tokens to the target's position in the robot base frame on expert frames of scenes nothing else uses
          (split by episode), in cm, beside the state alone and a linear read of the raw pixels
          (vla/feature_probe.py). Cheap (minutes): compares backbones, image sizes and layers before a training.
          `--tokens text` reads the tokens after the views instead, the only ones that see the instruction (the
          LLM is causal and the views come first): it matters where the instruction names one of several objects.
          `--tokens point` reads what the backbone says when asked: its decoded answer to the grounding question
          "point to the object to act on" in each view (not an input the head gets). `--readouts attention` adds a
          small network that reads the tokens as the head does (a feature a linear map misses still counts);
          `--frames before-move` or `first:K` keeps only the frames before the object is grasped, or the first K,
          where the state cannot know where the target is.
Flags after `--` go to train_vla.py (e.g. `-- --backbone tiny-grounded --cache-features`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

import envs  # noqa: E402
from policies.vla_policy import VLAPolicy  # noqa: E402
from rollouts.config import RolloutConfig  # noqa: E402
from rollouts.evaluate import check_held_out, episode_specs, evaluate, print_summary, resolve_tasks  # noqa: E402
from vla.train.cli import parse_args  # noqa: E402

OUT = Path("outputs/diagnose")
LIFTED_M = 0.03  # the picked object rose this far above where it started: it was held
NEAR_M = 0.05  # the gripper came this close to the object's centre: close enough to grasp it


def _train(dataset: Path, run_name: str, steps: int, extra: list[str]) -> Path:
    """Train (or resume) a run; returns its final checkpoint."""
    # lazy, here and in the rungs below: the modules that import torch or `datasets` (keeps --help quick)
    from vla.train.preflight import plan_run
    from vla.train.workspace import Workspace

    argv = ["--dataset", str(dataset), "--output", str(OUT / "runs"), "--run-name", run_name, "--steps", str(steps),
            "--save-every", str(steps), "--keep-last", "1", "--wandb", "false", *extra]
    train_cfg, model_cfg = parse_args(argv)
    result = Workspace(plan_run(train_cfg, model_cfg)).run()
    return result.run_dir / f"checkpoint-{steps:06d}"


def _policy(checkpoint: Path):
    return VLAPolicy.from_checkpoint(checkpoint, device="cpu")


def memorize(args, extra: list[str]) -> int:
    from vla.data.collect import CollectConfig, collect
    from vla.train.offline_eval import open_loop_error

    root = OUT / f"memorize-{args.task}"
    demos = root / "demos"
    collect(CollectConfig(task=args.task, episodes=1, out=str(demos), image_size=args.image_size, seed=args.seed,
                          workers=1))
    checkpoint = _train(demos, f"memorize-{args.task}-{args.steps}", args.steps,
                        ["--data.augment.enabled", "false", *extra])
    error = open_loop_error(_policy(checkpoint), demos, episodes=[0], stride=1)
    print(f"open-loop on the demo itself: {error.line()}")
    evaluation = evaluate(RolloutConfig(task=args.task, checkpoint=str(checkpoint), demo_seeds=True, episodes=1,
                                        out_dir=str(root / f"replay-{args.steps}")))
    print_summary(evaluation)
    replayed = evaluation.summaries[args.task]
    print(f"memorize: {'PASS' if replayed.successes else 'FAIL'} ({replayed.successes}/{replayed.episodes} replays of "
          f"its own scene succeed after {args.steps} steps)")
    return 0 if replayed.successes else 1


def demo_counts(args, extra: list[str]) -> int:
    from vla.data.dataset import validate_dataset
    from vla.train.offline_eval import held_out_episodes, open_loop_error

    counts = sorted(int(n) for n in args.demos.split(","))
    validate_dataset(args.dataset)
    rows = []
    checkpoints = {n: _train(Path(args.dataset), f"demos{n}-{Path(args.dataset).name}-{args.steps}", args.steps,
                             ["--data.episodes-per-task", str(n), *extra]) for n in counts}
    # Score every run on the same frames: the demos the largest run did not train on.
    largest = _policy(checkpoints[counts[-1]])
    episodes = held_out_episodes(args.dataset, largest.demo_seeds)
    for n in counts:
        error = open_loop_error(_policy(checkpoints[n]), args.dataset, episodes=episodes, max_frames=args.max_frames)
        rows.append((n, error))
        print(f"{n:>4} demos/task: {error.line()}", flush=True)
    print(f"\n{'demos/task':>10} {'held-out mse':>13}  per part")
    for n, error in rows:
        print(f"{n:>10} {error.mse:>13.4f}  " + ", ".join(f"{k} {v:.4f}" for k, v in error.per_part.items()))
    (OUT / "demo_counts.json").write_text(json.dumps({n: e.__dict__ for n, e in rows}, indent=2))
    return 0


def controls(args, extra: list[str]) -> int:
    base = RolloutConfig(task=args.task, checkpoint=args.checkpoint, episodes=args.episodes, num_envs=args.num_envs,
                         seed=args.seed)
    results = {name: evaluate(dataclasses.replace(base, ablate=ablate))
               for name, ablate in (("as trained", ""), ("cameras blanked", "cameras"), ("state held", "state"))}
    tasks = list(results["as trained"].summaries)
    print(f"\n{'task':<20}" + "".join(f"{name:>18}" for name in results))
    for task in tasks:
        cells = []
        for name, ev in results.items():
            s = ev.summaries[task]
            cells.append(f"{100 * s.rate:5.1f}% ({s.successes}/{s.episodes})")
        print(f"{task:<20}" + "".join(f"{c:>18}" for c in cells))
    return 0


def _target(task: str, state: dict) -> tuple[np.ndarray, bool]:
    """(the target's position, whether its first sub-goal is met) from the env's privileged state."""
    if task == "PnPCabToCounter":
        return state["object_pos"], bool(state["object_on_counter"])
    if task == "TurnOffMicrowave":
        return state["button_pos"], not bool(state["turned_on"])
    return state["button_pos"], bool(state["button_pressed"])


def _run_episode(env, policy, task: str, seed: int, horizon: int) -> dict:
    """One held-out episode in this process, tracking the gripper against the task's target."""
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed)  # the noise the rollout runner gives this episode, so the rollout is replayed
    sim = env.unwrapped.sim
    start_target, _ = _target(task, sim.privileged_state())
    closest, closest_at, reached, success, steps, rise = np.inf, None, False, False, 0, 0.0
    for steps in range(1, horizon + 1):
        obs, _, terminated, truncated, info = env.step(policy.select_action(obs))
        state = sim.privileged_state()
        target, met = _target(task, state)
        distance = float(np.linalg.norm(state["eef_pos"] - target))
        if distance < closest:
            closest, closest_at = distance, state["eef_pos"].copy()
        reached |= met
        rise = max(rise, float(target[2] - start_target[2]))
        success = bool(info.get("success", False))
        if success or terminated or truncated:
            break
    row = {"seed": seed, "success": success, "sub_goal": reached, "closest_cm": 100 * closest, "steps": steps,
           "target": start_target.tolist(), "closest_at": closest_at.tolist()}
    if task == "PnPCabToCounter":  # the object only rises off the cabinet floor when it is held
        row["lifted"] = rise >= LIFTED_M
    return row


def _pick_funnel(rows: list[dict]) -> str:
    """Where pick-and-place episodes stop: how many got near the object, lifted it, put it on the counter, let go."""
    near = sum(r["closest_cm"] < 100 * NEAR_M for r in rows)
    lifted = sum(r["lifted"] for r in rows)
    placed = sum(r["sub_goal"] for r in rows)
    done = sum(r["success"] for r in rows)
    return (f"PnPCabToCounter of {len(rows)}: gripper within {100 * NEAR_M:.0f} cm of the object {near}, object lifted "
            f"{lifted}, on the counter {placed}, success (on the counter, gripper clear) {done}")


def _tracking(rows: list[dict]) -> float:
    """Least-squares slope of the gripper's closest point on the target's position (horizontal, centred)."""
    target = np.array([r["target"][:2] for r in rows])
    reached = np.array([r["closest_at"][:2] for r in rows])
    target, reached = target - target.mean(0), reached - reached.mean(0)
    spread = float((target ** 2).sum())
    return float((target * reached).sum() / spread) if spread > 0 else float("nan")


def failures_path(checkpoint: Path, tasks: list[str]) -> Path:
    """Where a failure trace goes: outside the checkpoint (it stays read-only), one file per checkpoint and tasks, so
    tracing another task does not overwrite the first."""
    checkpoint = checkpoint.resolve()
    return OUT / f"failures-{checkpoint.parent.name}-{checkpoint.name}-{'-'.join(tasks)}.json"


def failures(args, extra: list[str]) -> int:
    policy = _policy(Path(args.checkpoint))
    tasks = resolve_tasks(args.task)
    config = RolloutConfig(task=args.task, checkpoint=args.checkpoint, episodes=args.episodes, seed=args.seed)
    specs = episode_specs(tasks, config, policy.demo_seeds)
    check_held_out(specs, policy.demo_seeds or {}, allow=False)
    results: dict[str, list[dict]] = {}
    for task in tasks:
        env = envs.make(task, spec=policy.spec)
        horizon = int(envs.TASKS[task].horizon)
        rows = results[task] = []
        for spec in (s for s in specs if s.task == task):
            rows.append(_run_episode(env, policy, task, spec.seed, horizon))
            r = rows[-1]
            print(f"{task} seed {r['seed']}: {'success' if r['success'] else 'fail':>7}, sub-goal "
                  f"{'yes' if r['sub_goal'] else 'no':>3}, closest {r['closest_cm']:5.1f} cm", flush=True)
        env.close()
    sub_goal = {"PnPCabToCounter": "on counter", "TurnOffMicrowave": "turned off", "CoffeePressButton": "pressed"}
    print(f"\n{'task':<20}{'success':>9}{'sub-goal':>22}{'closest cm (median, p90)':>27}{'target spread cm':>18}"
          f"{'tracking':>10}")
    for task, rows in results.items():
        closest = np.array([r["closest_cm"] for r in rows])
        spread = 100 * np.linalg.norm(np.std([r["target"][:2] for r in rows], axis=0))
        print(f"{task:<20}{sum(r['success'] for r in rows):>5}/{len(rows):<3}"
              f"{sub_goal[task]:>14} {sum(r['sub_goal'] for r in rows):>3}/{len(rows):<3}"
              f"{np.median(closest):>16.1f}, {np.percentile(closest, 90):>5.1f}{spread:>18.1f}{_tracking(rows):>10.2f}")
    if "PnPCabToCounter" in results:
        print(_pick_funnel(results["PnPCabToCounter"]))
    out = failures_path(Path(args.checkpoint), tasks)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"per-episode rows: {out}")
    return 0


def _csv(text: str, kind=str) -> list:
    return [kind(part) for part in text.split(",") if part.strip()]


def feature_probe(args, extra: list[str]) -> int:
    import pickle

    from tqdm import tqdm

    from checkpoints.backbones import resolve_backbone
    from vla.backbone import load_backbone
    from vla.config import BackboneConfig
    from vla.feature_probe import (READOUTS, TOKEN_KINDS, ProbeConfig, parse_frames, pixel_features, pointing_features,
                                   probe, record_frames, select_frames, token_features)
    from vla.vqa.sft import load_vlm
    from vla.train.preflight import backbone_dims

    cfg = ProbeConfig(tasks=tuple(resolve_tasks(args.task)), episodes=args.episodes, frame_stride=args.frame_stride,
                      render_size=args.render_size, seed=args.seed, workers=args.workers)
    sizes, layers = _csv(args.image_sizes, int), _csv(args.layers, int)
    backbones = {name: resolve_backbone(name) for name in _csv(args.backbones)}
    widths = {}
    for name, ref in backbones.items():  # before minutes of simulation, not after
        widths[name], depth = backbone_dims(ref)
        if max(layers) > depth:
            raise ValueError(f"--layers {max(layers)}: backbone {name!r} has {depth} LLM layers; choose 1..{depth}")
    token_kinds = _csv(args.tokens)
    if unknown := sorted(set(token_kinds) - set(TOKEN_KINDS)):
        raise ValueError(f"--tokens {','.join(unknown)}: choose from {','.join(TOKEN_KINDS)}")
    readouts = _csv(args.readouts)
    if unknown := sorted(set(readouts) - set(READOUTS)):
        raise ValueError(f"--readouts {','.join(unknown)}: choose from {','.join(READOUTS)}")
    parse_frames(args.frames)  # a malformed --frames fails here, before the simulation
    configs = {f"{name} {size}px L{layer}": (name, BackboneConfig(name_or_path=ref.source, image_size=size,
                                                                  select_layer=layer))
               for name, ref in backbones.items() for size in sizes for layer in layers}  # validates sizes and layers
    frames_file = OUT / (f"probe-frames-{'-'.join(cfg.tasks)}-{cfg.episodes}ep-seed{cfg.seed}-stride{cfg.frame_stride}"
                         f"-{cfg.render_size}px.pkl")
    if frames_file.is_file():
        frames = pickle.loads(frames_file.read_bytes())
    else:
        with tqdm(total=len(cfg.tasks) * cfg.episodes, desc="expert episodes", unit="ep") as bar:
            frames = record_frames(cfg, progress=bar.update)
        frames_file.parent.mkdir(parents=True, exist_ok=True)
        frames_file.write_bytes(pickle.dumps(frames))
    # Cut every episode to the frames --frames keeps once, here, so that only those are encoded.
    frames = {task: [select_frames(e, args.frames) for e in episodes] for task, episodes in frames.items()}
    rows: dict[str, dict[str, dict]] = {task: {} for task in cfg.tasks}
    for task, episodes in frames.items():
        targets = [e["target_cm"] for e in episodes]
        rows[task]["state only"] = probe([e["state"] for e in episodes], targets)
        rows[task]["pixels 16x16"] = probe([pixel_features(e["images"]) for e in episodes], targets)
    for label, (name, config) in configs.items():
        backbone = load_backbone(config)
        vlm = load_vlm(config.name_or_path, config.image_size) if "point" in token_kinds else None
        instruction_first = backbone.prompt_order == "instruction-first"
        for task, episodes in tqdm(frames.items(), desc=label, unit="task"):
            for kind in token_kinds:
                if kind == "point":  # the whole model's answer: the same for every --layers; (u, v, visible) per view
                    features = [pointing_features(vlm, e["images"], e["instruction"], instruction_first,
                                                  config.image_size).reshape(len(e["images"]), -1, 3)
                                for e in episodes]
                else:  # one row of `width` per token
                    features = [token_features(backbone, e["images"], e["instruction"], kind)
                                .reshape(len(e["images"]), -1, widths[name]) for e in episodes]
                for readout in readouts:
                    row = f"{label} {kind}" + ("" if readout == "ridge" else f" {readout}")
                    rows[task][row] = probe(features, [e["target_cm"] for e in episodes], readout)
    print(f"\nerror of the target's position predicted from each input, cm (mean, median over the frames of the "
          f"scored episodes; frames: {args.frames}), fit on the first N of the fit episodes; {cfg.episodes} per task "
          f"split 60/20/20; ridge unless the row says 'attention':")
    for task, by_input in rows.items():
        counts = list(next(iter(by_input.values())))
        print(f"\n{task:<32}" + "".join(f"{f'{n} scenes':>16}" for n in counts))
        for label, by_count in by_input.items():
            print(f"{label:<32}" + "".join(f"{by_count[n]['mean_cm']:>9.1f}, {by_count[n]['median_cm']:>4.1f}"
                                           for n in counts))
    out = OUT / f"feature_probe-{frames_file.stem.removeprefix('probe-frames-')}-{args.frames.replace(':', '')}.json"
    out.write_text(json.dumps({"config": dataclasses.asdict(cfg), "frames": args.frames, "readouts": readouts,
                               "rows": rows}, indent=2))
    print(f"rows: {out}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="rung", required=True)
    m = sub.add_parser("memorize", help="one demo, memorized, replayed on its own scene")
    m.add_argument("--task", default="CoffeePressButton")
    m.add_argument("--steps", type=int, default=1500)
    m.add_argument("--seed", type=int, default=0, help="the demo's scene seed")
    m.add_argument("--image-size", type=int, default=128)
    d = sub.add_parser("demos", help="open-loop error on held-out demos as demos are added")
    d.add_argument("--dataset", required=True)
    d.add_argument("--demos", default="5,20,50")
    d.add_argument("--steps", type=int, default=2000)
    d.add_argument("--max-frames", type=int, default=600)
    c = sub.add_parser("controls", help="success as trained, cameras blanked, state held")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--task", default="all")
    c.add_argument("--episodes", type=int, default=20)
    c.add_argument("--num-envs", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("failures", help="closest approach to the target, sub-goal reached, does the gripper track it")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--task", default="all")
    f.add_argument("--episodes", type=int, default=20)
    f.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("probe", help="ridge probe: do the frozen features locate the target (cm)")
    p.add_argument("--backbones", default="tiny-grounded,tiny", help="comma-separated names or directories")
    p.add_argument("--image-sizes", default="128", help="comma-separated backbone input sizes (multiples of 32)")
    p.add_argument("--layers", default="4", help="comma-separated select_layer values")
    p.add_argument("--tokens", default="image", help="comma-separated: image (every image token), text (the tokens "
                   "after the views, which can read the instruction: mean-pooled, then the last), point (the "
                   "backbone's decoded answer to 'point to the object to act on' in each view)")
    p.add_argument("--readouts", default="ridge", help="comma-separated: ridge (linear, every token flattened), "
                   "attention (a small network that reads the tokens as the head does, stopped on the choose episodes)")
    p.add_argument("--frames", default="all", help="which frames of each episode: all, before-move (until the target "
                   "first moves: the object not yet grasped), first:K (the first K kept frames)")
    p.add_argument("--task", default="all")
    p.add_argument("--episodes", type=int, default=40, help="expert episodes per task")
    p.add_argument("--frame-stride", type=int, default=8)
    p.add_argument("--render-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=2_000_000, help="first scene seed")
    p.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        return {"memorize": memorize, "demos": demo_counts, "controls": controls, "failures": failures,
                "probe": feature_probe}[args.rung](args, extra)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
