"""The trained VLA as a Policy: checkpoint + normalizer + action-chunk execution, with checked inputs.

Torch-free to import: the policy server, and through it the robot-side client (policies/remote.py), import
validate_observation from here, so torch, the checkpoint loader and the model code are imported where used.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from contract.embodiments import STATE_KEY, TASK_KEY
from contract.spec import ObservationSpec, spec_from_checkpoint_config
from policies.action_queue import ChunkExecution, ExecutionConfig


ABLATIONS = ("", "cameras", "state")


def validate_observation(obs: dict, cameras: tuple[str, ...], state_dim: int) -> int | None:
    """Check keys, image shape/dtype and state at the policy boundary; returns the batch size (None: unbatched)."""
    if not isinstance(obs, dict):
        raise ValueError(f"observation must be a dict; got {type(obs).__name__}")
    keys = [f"observation.images.{c}" for c in cameras] + [STATE_KEY, TASK_KEY]
    missing = [k for k in keys if k not in obs]
    if missing:
        raise ValueError(f"observation lacks {', '.join(missing)}; this policy needs {', '.join(keys)}")
    state = np.asarray(obs[STATE_KEY])
    if state.ndim not in (1, 2) or state.shape[-1] != state_dim:
        raise ValueError(f"{STATE_KEY}: expected shape ({state_dim},) or (B, {state_dim}); got {state.shape}")
    if not np.issubdtype(state.dtype, np.floating) and not np.issubdtype(state.dtype, np.integer):
        raise ValueError(f"{STATE_KEY}: expected a float array; got dtype {state.dtype}")
    if not np.isfinite(state).all():
        raise ValueError(f"{STATE_KEY} contains NaN or inf: {state.tolist()}")
    batch = state.shape[0] if state.ndim == 2 else None
    first = None
    for camera in cameras:
        key = f"observation.images.{camera}"
        image = obs[key]
        shape, dtype = tuple(getattr(image, "shape", ())), getattr(image, "dtype", type(image))
        want = (batch, "H", "W", 3) if batch else ("H", "W", 3)
        if dtype != np.uint8 or len(shape) != len(want) or shape[-1] != 3 or (batch and shape[0] != batch):
            raise ValueError(f"{key}: expected uint8 {'x'.join(map(str, want))} image; got {dtype} {shape}")
        if first is not None and shape != first:
            raise ValueError(f"{key}: shape {shape} differs from the other views' {first}")
        first = shape
    task = obs[TASK_KEY]
    if batch is None and not isinstance(task, str):
        raise ValueError(f"{TASK_KEY}: expected the instruction string; got {type(task).__name__}")
    if batch is not None and (isinstance(task, str) or len(task) != batch or not all(isinstance(t, str) for t in task)):
        raise ValueError(f"{TASK_KEY}: expected a list of {batch} instruction strings for a batch of {batch}")
    return batch


def pick_device(device: str | None = None) -> str:
    """'cuda' when available (and not overridden), else 'cpu'."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class VLAPolicy:
    """A VLA checkpoint behind the Policy interface: raw obs in, raw (un-normalized) actions out."""

    def __init__(self, model, normalizer, *, spec: ObservationSpec = ObservationSpec(), device: str = "cpu",
                 execution: ExecutionConfig = ExecutionConfig(), source: str = "", seed: int = 0, image_transform=None,
                 demo_seeds: dict[str, list[int]] | None = None, ablate: str = ""):
        """`spec`: what the policy was trained on (cameras, image size, embodiment) and the chunk it predicts."""
        import torch

        if ablate not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablate!r}; valid: cameras, state (or empty for none)")
        self.model = model.eval() if hasattr(model, "eval") else model
        self.normalizer = normalizer
        self.spec = spec
        self.embodiment = spec.robot
        self.action_dim = self.embodiment.action_dim
        self.device = device
        self.source = source
        # The eval half of the training image pipeline (centre crop + resize): the model must see what it trained on.
        self.image_transform = image_transform
        self.chunks = ChunkExecution(execution, chunk_size=self.chunk_size)
        self.demo_seeds = demo_seeds or {}  # task -> simulator seeds of the demos trained on
        # Controls: "cameras" feeds black images, "state" the normalized state's midpoint (zeros); "" neither.
        self.ablate = ablate
        # Flow matching starts from noise. An episode draws it from its own stream, restarted at reset from
        # (policy seed, episode seed), so its actions do not depend on which episodes share its batches or ran
        # before it. Calls without slots (the policy server) draw from one stream seeded once.
        self.seed = seed
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._noise: dict[int, torch.Generator] = {}  # episode slot -> its noise stream
        takes = inspect.signature(model.predict_action_chunk).parameters
        self._takes_generator, self._takes_noise = "generator" in takes, "noise" in takes

    # The Policy interface's names for parts of the spec (the server, the runner and the bridge read these).
    @property
    def cameras(self) -> tuple[str, ...]:
        return self.spec.cameras

    @property
    def chunk_size(self) -> int:
        return self.spec.action_horizon

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None,
                        execution: ExecutionConfig = ExecutionConfig(), seed: int = 0, ablate: str = "") -> VLAPolicy:
        """Load a checkpoint dir (or a run dir: its newest, or 'latest'); errors are one-line CheckpointErrors."""
        from checkpoints import load_policy_checkpoint
        from checkpoints.load import eval_image_transform
        from vla.data.normalize import Normalizer

        device = pick_device(device)
        model, config, normalizer = load_policy_checkpoint(path, device=device)
        if isinstance(normalizer, dict):
            normalizer = Normalizer.from_dict(normalizer)
        spec = spec_from_checkpoint_config(config)
        transform = eval_image_transform(config) if "transforms" in config else None
        return cls(model, normalizer, spec=spec, device=device, execution=execution, source=str(path), seed=seed,
                   image_transform=transform, demo_seeds=config.get("dataset", {}).get("episode_seeds"), ablate=ablate)

    def check_compatible(self, env: ObservationSpec) -> None:
        """One-line error when the env renders other images than this policy was trained on, or is another robot."""
        problem = self.spec.mismatch(env, f"checkpoint {self.source}" if self.source else "policy")
        if problem:
            raise ValueError(problem)

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        """Start an episode in `slot` (a runner's env worker; 0 for a single env): its action queue empties.

        With the episode's `seed`, its noise stream restarts from (policy seed, episode seed); without, it runs on.
        """
        import torch

        self.chunks.reset(slot)
        if seed is not None:
            self._noise[slot] = torch.Generator().manual_seed(noise_seed(self.seed, seed))

    def predict_action_chunk(self, obs: dict, slots: list[int] | None = None) -> np.ndarray:
        """(chunk, action_dim) raw actions for one observation, (B, chunk, action_dim) for a batched one.

        `slots`: the episode slot of each row (see reset); row i's noise then comes from slot i's own stream.
        """
        import torch

        batch = validate_observation(obs, self.cameras, self.embodiment.state_dim)
        unbatched = batch is None
        if slots is not None and len(slots) != (batch or 1):
            raise ValueError(f"{len(slots)} slots for a batch of {batch or 1} observations; give one slot per row")
        views = [np.asarray(obs[f"observation.images.{c}"]) for c in self.cameras]
        images = np.stack(views, axis=-4)  # (..., V, H, W, 3)
        state = np.asarray(obs[STATE_KEY], dtype=np.float32)
        instructions = obs[TASK_KEY]
        if unbatched:
            images, state, instructions = images[None], state[None], [instructions]
        images = torch.from_numpy(np.ascontiguousarray(images))
        if self.ablate == "cameras":
            images = torch.zeros_like(images)
        if self.image_transform is not None:
            images = torch.stack([self.image_transform(views) for views in images])
        normalized_state = torch.as_tensor(self.normalizer.normalize_state(state), dtype=torch.float32)
        if self.ablate == "state":
            normalized_state = torch.zeros_like(normalized_state)
        model_batch = {
            "images": images.to(self.device),
            "instruction": list(instructions),
            "state": normalized_state.to(self.device),
            "embodiment": self.embodiment.name,
        }
        if slots is not None and self._takes_noise:
            kwargs = {"noise": self._initial_noise(slots)}
        else:
            kwargs = {"generator": self.generator} if self._takes_generator else {}
        with torch.inference_mode():
            chunk = self.model.predict_action_chunk(model_batch, **kwargs)
        chunk = chunk.float().cpu().numpy()[..., : self.action_dim]
        if chunk.shape[:2] != (len(state), self.chunk_size) or chunk.shape[-1] != self.action_dim:
            raise RuntimeError(f"model returned a chunk of shape {chunk.shape}; expected "
                               f"({len(state)}, {self.chunk_size}, {self.action_dim})")
        actions = np.asarray(self.normalizer.unnormalize_action(chunk), dtype=np.float32)
        return actions[0] if unbatched else actions

    def select_action(self, obs: dict) -> np.ndarray:
        """The next action of the current chunk (slot 0); predicts a new chunk when the queue asks for one."""
        return self.chunks.select_one(obs, self.predict_action_chunk)

    def select_actions(self, observations: list[dict], slots: list[int]) -> np.ndarray:
        """(B, action_dim): each slot's next action; the slots needing a chunk share one batched prediction."""
        return self.chunks.select(observations, slots, self.predict_action_chunk)

    def _initial_noise(self, slots: list[int]):
        """One row of starting noise per slot, each from its slot's stream (a slot never seeded: the policy seed)."""
        import torch

        rows = []
        for slot in slots:
            if slot not in self._noise:
                self._noise[slot] = torch.Generator().manual_seed(self.seed)
            rows.append(torch.randn(self.model.noise_shape, generator=self._noise[slot]))
        return torch.stack(rows)


def noise_seed(policy_seed: int, episode_seed: int) -> int:
    """The seed of an episode's noise stream: a 32-bit mix of (policy seed, episode seed), the same in any process."""
    return int(np.random.SeedSequence([policy_seed, episode_seed]).generate_state(1)[0])
