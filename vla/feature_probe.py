"""Do a frozen backbone's features say where the task's target is? A linear probe, rung 4 of the diagnosis ladder.

The policy gets the gripper's position from the state; where the button (or the object) sits it can only learn from
the cameras. So: run the scripted expert on scenes no demo, evaluation or pretraining uses, keep every few frames with
the target's position in the robot base frame (simulator ground truth, never a policy input), encode the views with
a backbone as the policy would, and fit ridge regressions from the image features to that position. Episodes are
split, never frames: 60% fit, 20% choose the ridge strength, 20% are scored; each probe is fit on an eighth, a
quarter, half and all of the fit episodes, so the table shows how the error falls as scenes are added (the policy
learns the same map from its demos' scenes). Reported per task, in cm on the scored episodes, beside two references
on the same frames: the state alone (it knows the gripper, not the scene: the error is the scene's spread, and for
pick-and-place what the grasp tells) and a linear read of the raw pixels (every view at 16x16).

A backbone whose features do no better than the state alone cannot aim; one close to the target's size (the buttons'
radii are 1.6 and 1.8 cm) gives the head what it needs, if the head can read it as well as a linear map does.

Two questions a linear read of every frame leaves open, each an option: `readout="attention"` fits a small network that
reads the tokens the way the head does (project, self-attend, pool with a learned query), trained by gradient descent
and stopped on the choose episodes, so a feature the ridge cannot read linearly still counts; `frames="before-move"`
keeps only the frames before the target left its first place (the object not yet grasped; every frame of a button
task), and `frames="first:K"` the first K kept frames of each episode, before the gripper has come near the target:
there the state cannot know where the object is, so only the cameras can say it.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract.embodiments import CAMERA_NAMES, STATE_KEY, TASK_KEY

SPLIT = (0.6, 0.2)  # fit, choose the ridge strength; the rest is scored
RIDGE_STRENGTHS = tuple(10.0 ** np.arange(-2, 6))  # times the number of features (the features are standardized)
PIXEL_SIZE = 16
# What a probe reads: "image" and "text" are tokens the head receives; "point" is the backbone's own decoded answer
# to the grounding question "point to the object to act on" in each view (what it can say, not what the head gets).
HEAD_TOKEN_KINDS = ("image", "text")
TOKEN_KINDS = HEAD_TOKEN_KINDS + ("point",)
READOUTS = ("ridge", "attention")
MOVED_CM = 1.0  # the target counts as moved once it is this far from where the episode found it


@dataclass(frozen=True)
class ProbeConfig:
    tasks: tuple[str, ...] = ("CoffeePressButton", "TurnOffMicrowave", "PnPCabToCounter")
    episodes: int = 40  # per task
    frame_stride: int = 8  # keep every 8th step of each episode
    render_size: int = 256  # the env renders at this size; each backbone resizes to its own image_size
    seed: int = 2_000_000  # first scene seed; demos start at 0, grounding pretraining at 1,000,000
    workers: int = 2

    def __post_init__(self):
        if self.episodes < 5:
            raise ValueError(f"episodes must be >= 5 per task (fit, choose and score take whole episodes), "
                             f"got {self.episodes}")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")


def record_episode(task: str, seed: int, render_size: int, frame_stride: int) -> dict:
    """One scripted-expert episode: every `frame_stride`-th frame's views, state and the target's position (cm, in the
    robot base frame)."""
    import envs  # lazy: the simulator loads in the worker processes only
    from policies.experts import make_expert
    from vla.vqa.grounding import task_target

    env = envs.make(task, image_size=render_size)
    expert = make_expert(task, env, seed=seed)
    sim = env.unwrapped.sim
    obs, _ = env.reset(seed=seed)
    expert.reset(seed=seed)
    images, states, targets = [], [], []
    for t in range(env.horizon):
        if t % frame_stride == 0:
            privileged = sim.privileged_state()
            target = sim.landmarks()[task_target(task, sim)].position
            targets.append(privileged["base_mat"].T @ (target - privileged["base_pos"]) * 100.0)
            images.append(np.stack([obs[f"observation.images.{cam}"] for cam in CAMERA_NAMES]))
            states.append(np.asarray(obs[STATE_KEY], np.float32))
        obs, _, terminated, truncated, _ = env.step(np.asarray(expert.select_action(obs), np.float32))
        if terminated or truncated:
            break
    env.close()
    return {"images": np.stack(images), "state": np.stack(states), "target_cm": np.stack(targets).astype(np.float32),
            "instruction": str(obs[TASK_KEY])}


def _record(args) -> dict:
    return record_episode(*args)


def record_frames(cfg: ProbeConfig, progress=None) -> dict[str, list[dict]]:
    """Episodes per task, in seed order (worker processes render; results do not depend on their number)."""
    jobs = [(task, cfg.seed + i, cfg.render_size, cfg.frame_stride) for task in cfg.tasks for i in range(cfg.episodes)]
    out: dict[str, list[dict]] = {task: [] for task in cfg.tasks}
    with mp.get_context("spawn").Pool(cfg.workers) as pool:
        for (task, *_), episode in zip(jobs, pool.imap(_record, jobs)):  # imap keeps the jobs' order
            out[task].append(episode)
            if progress is not None:
                progress(1)
    return out


@torch.no_grad()
def token_features(backbone, images: np.ndarray, instruction: str, tokens: str = "image",
                   batch_size: int = 32) -> np.ndarray:
    """(F, V, H, W, 3) uint8 frames of one episode -> one feature row per frame, from the tokens the head receives.

    tokens="image": every image token, concatenated. With the views first (the usual prompt order) and a causal LLM,
    these cannot know which object the instruction names. tokens="text": the tokens after the last image token (with
    the views first, the instruction and the chat template's tail, which attend to the views and the instruction),
    mean-pooled, then the sequence's last token."""
    if tokens not in HEAD_TOKEN_KINDS:
        raise ValueError(f"tokens must be 'image' or 'text' (read 'point' with pointing_features), got {tokens!r}")
    rows = []
    for start in range(0, len(images), batch_size):
        chunk = torch.from_numpy(images[start:start + batch_size])
        out = backbone.encode(chunk, [instruction] * len(chunk))  # one instruction: no padding in the chunk
        if tokens == "image":
            picked = out.features[out.image_mask].reshape(len(chunk), -1)  # views' tokens in order, concatenated
        else:
            after_images = int(out.image_mask[0].nonzero().max()) + 1
            text = out.features[:, after_images:]
            picked = torch.cat([text.mean(1), text[:, -1]], dim=-1)
        rows.append(picked.float().numpy())
    return np.concatenate(rows)


@torch.no_grad()
def pointing_features(vlm, images: np.ndarray, instruction: str, instruction_first: bool, size: int,
                      batch_size: int = 32) -> np.ndarray:
    """(F, V, H, W, 3) uint8 frames -> per frame the backbone's greedy answer to "point to the object to act on in
    image k" for each view k, as (u, v, visible) per view: u, v on 0..1, and 0.5, 0.5, 0 when it answers anything
    but a point. The question is the grounding pretraining's own (vla/vqa/grounding.py), in the prompt order the
    backbone was pretrained with."""
    from vla.backbone import resize_views
    from vla.vqa.format import VQASample
    from vla.vqa.grounding import parse_point, prompt_blocks, target_question
    from vla.vqa.sft import generate_answers

    frames, views = images.shape[:2]
    flat = torch.from_numpy(images).reshape(-1, *images.shape[2:]).permute(0, 3, 1, 2)
    small = resize_views(flat, size).permute(0, 2, 3, 1).reshape(frames, views, size, size, 3)
    urls = [f"view{k}.png" for k in range(views)]  # placeholders: the images are passed in memory
    opening = instruction if instruction_first else None
    jobs = [(f, k) for f in range(frames) for k in range(views)]
    out = np.tile(np.array([0.5, 0.5, 0.0], np.float32), (frames, views, 1))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        samples = [VQASample(f"probe-{f}-{k}", "target", prompt_blocks(urls, target_question(instruction, k,
                             instruction_first), opening), "") for f, k in chunk]
        answers = generate_answers(vlm, samples, [list(small[f].numpy()) for f, _ in chunk])
        for (f, k), answer in zip(chunk, answers):
            point = parse_point(answer)
            if point is not None:
                out[f, k] = (point[0] / 1000.0, point[1] / 1000.0, 1.0)
    return out.reshape(frames, -1)


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Every view resized to 16x16 RGB, flattened: what a linear map can read from the pixels themselves."""
    flat = torch.from_numpy(images).reshape(-1, *images.shape[2:]).permute(0, 3, 1, 2).float() / 255.0
    small = F.interpolate(flat, size=(PIXEL_SIZE, PIXEL_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return small.reshape(len(images), -1).numpy()


def split_episodes(num_episodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Episode indices to fit on, to choose the ridge strength on, and to score on (in seed order, disjoint)."""
    n_fit = int(round(SPLIT[0] * num_episodes))
    n_choose = max(1, int(round(SPLIT[1] * num_episodes)))
    idx = np.arange(num_episodes)
    return idx[:n_fit], idx[n_fit:n_fit + n_choose], idx[n_fit + n_choose:]


def _ridge_fits(x_fit: np.ndarray, y_fit: np.ndarray, strengths) -> dict[float, object]:
    """Dual-form ridge on standardized features (fast when frames < features), one predict function per strength;
    the standardization and the Gram matrix are computed once for all strengths."""
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    xs = (x_fit - mean) / std
    y_mean = y_fit.mean(0)
    gram = xs @ xs.T

    def fit(strength: float):
        alpha = np.linalg.solve(gram + strength * xs.shape[1] * np.eye(len(xs)), y_fit - y_mean)
        weights = xs.T @ alpha
        return lambda x: ((x - mean) / std) @ weights + y_mean

    return {strength: fit(strength) for strength in strengths}


def parse_frames(frames: str) -> str | int:
    """A frame set as a probe uses it: "all" and "before-move" as they are, "first:K" as K; else one clear error."""
    if frames in ("all", "before-move"):
        return frames
    count = frames.removeprefix("first:")
    if count != frames and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ValueError(f"frames must be 'all', 'before-move' or 'first:K' with K >= 1, got {frames!r}")


def frame_mask(target_cm: np.ndarray, frames: str) -> np.ndarray:
    """Which of an episode's kept frames a probe reads: "all"; "before-move", every frame until the target first
    leaves its starting place by MOVED_CM (all of them for a button); "first:K", the first K."""
    rule = parse_frames(frames)
    if rule == "all":
        return np.ones(len(target_cm), bool)
    if rule == "before-move":
        still = np.linalg.norm(target_cm - target_cm[0], axis=1) < MOVED_CM
        return np.cumprod(still).astype(bool)  # a target put back near its start has still moved
    return np.arange(len(target_cm)) < rule


def select_frames(episode: dict, frames: str) -> dict:
    """A recorded episode (record_episode) cut to the frames `frames` keeps: every per-frame array alike."""
    keep = frame_mask(episode["target_cm"], frames)
    return {key: value[keep] if isinstance(value, np.ndarray) else value for key, value in episode.items()}


@dataclass(frozen=True)
class AttentionReadoutConfig:
    """A small reader of the tokens: far fewer weights than the head's, so it cannot just memorize the fit frames."""

    width: int = 64
    layers: int = 1
    heads: int = 4
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    max_epochs: int = 150
    patience: int = 20  # epochs without a better error on the choose episodes before stopping
    seed: int = 0


class AttentionReadout(nn.Module):
    """Tokens (B, N, D) -> a position (B, 3): each token projected and given a learned embedding for its slot (which
    view, where in it), self-attention over them, one learned query attending over the result, then an MLP."""

    def __init__(self, num_tokens: int, dim: int, cfg: AttentionReadoutConfig):
        super().__init__()
        self.proj = nn.Linear(dim, cfg.width)
        self.slot = nn.Parameter(torch.randn(num_tokens, cfg.width) * 0.02)
        block = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 2 * cfg.width, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, cfg.layers, enable_nested_tensor=False)
        self.query = nn.Parameter(torch.randn(1, 1, cfg.width) * 0.02)
        self.pool = nn.MultiheadAttention(cfg.width, cfg.heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, cfg.width), nn.GELU(),
                                 nn.Linear(cfg.width, 3))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.proj(tokens) + self.slot)
        pooled, _ = self.pool(self.query.expand(len(h), -1, -1), h, h)
        return self.out(pooled[:, 0])


def fit_attention_readout(x_fit: np.ndarray, y_fit: np.ndarray, x_choose: np.ndarray, y_choose: np.ndarray,
                          cfg: AttentionReadoutConfig = AttentionReadoutConfig()):
    """Train an AttentionReadout on (F, N, D) token rows (channels standardized on the fit frames, targets too), keep
    the epoch with the lowest mean error on the choose frames; returns the predict function and that epoch."""
    torch.manual_seed(cfg.seed)
    x_mean, x_std = x_fit.mean((0, 1)), x_fit.std((0, 1)) + 1e-6
    y_mean, y_std = y_fit.mean(0), y_fit.std(0) + 1e-6

    def tensor(x):
        return torch.from_numpy(((x - x_mean) / x_std).astype(np.float32))

    xf, xc = tensor(x_fit), tensor(x_choose)
    yf = torch.from_numpy(((y_fit - y_mean) / y_std).astype(np.float32))
    model = AttentionReadout(x_fit.shape[1], x_fit.shape[2], cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)

    def predict_with(net, x: torch.Tensor) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            return net(x).numpy().astype(np.float64) * y_std + y_mean

    best = (np.inf, 0, copy.deepcopy(model.state_dict()))
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        for idx in torch.randperm(len(xf), generator=generator).split(cfg.batch_size):
            loss = F.mse_loss(model(xf[idx]), yf[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        error = euclidean_cm(predict_with(model, xc), y_choose).mean()
        if error < best[0]:
            best = (error, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])
    return (lambda x: predict_with(model, tensor(x))), best[1]


def euclidean_cm(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - truth, axis=1)


def scene_counts(num_fit: int) -> tuple[int, ...]:
    """How many scenes each probe fits on: an eighth, a quarter, half and all of the fit episodes (at least 2)."""
    return tuple(sorted({max(2, num_fit // k) for k in (8, 4, 2, 1)}))


def probe(features: list[np.ndarray], targets: list[np.ndarray], readout: str = "ridge",
          attention: AttentionReadoutConfig = AttentionReadoutConfig()) -> dict[int, dict]:
    """A readout from per-episode features to targets, fit on the first n fit episodes for each n of scene_counts: per n
    the error on the scored episodes (cm) and what was chosen on the choose episodes (the ridge strength, or the
    attention readout's epoch). Ridge reads each frame's features flattened; the attention readout needs them as
    (frames, tokens, width). Every frame given is read: cut episodes to a frame set first (select_frames)."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
    if readout == "attention" and features[0].ndim != 3:
        raise ValueError("the attention readout reads tokens: features must be (frames, tokens, width)")
    fit, choose, score = split_episodes(len(features))

    def stack(idx):
        x = np.concatenate([features[i] for i in idx]).astype(np.float64)
        return (x.reshape(len(x), -1) if readout == "ridge" else x), np.concatenate([targets[i] for i in idx])

    x_choose, y_choose = stack(choose)
    x_score, y_score = stack(score)
    rows = {}
    for n in scene_counts(len(fit)):
        x_fit, y_fit = stack(fit[:n])
        if readout == "ridge":
            predictors = _ridge_fits(x_fit, y_fit, RIDGE_STRENGTHS)
            errors = {s: euclidean_cm(predict(x_choose), y_choose).mean() for s, predict in predictors.items()}
            chosen = min(errors, key=errors.get)
            predict = predictors[chosen]
        else:
            predict, chosen = fit_attention_readout(x_fit, y_fit, x_choose, y_choose, attention)
        err = euclidean_cm(predict(x_score), y_score)
        rows[n] = {"mean_cm": float(err.mean()), "median_cm": float(np.median(err)), "chosen": chosen,
                   "frames_scored": int(len(err)), "episodes_scored": int(len(score))}
    return rows
