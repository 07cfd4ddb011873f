"""Supervised fine-tuning of a Qwen3-VL on visual questions: cross-entropy on the answer tokens only.

Used to pretrain the tiny backbone on simulator grounding questions and to fine-tune any Qwen3-VL on XVR-style
cross-view questions. The model is the Qwen3-VL trunk plus its (tied) output layer. For the tiny backbone the
embedding stays frozen (it is rebuilt from its seed, see vla/tiny_qwen.py) and the answer distribution is taken
over the tokens that occur in answers only (`answer_vocab`), which cuts the output layer from 151,936 rows to a
few dozen; pretrained backbones use their full vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from checkpoints.backbones import TINY, resolve_backbone
from contract.files import atomic_write_json
from vla.tiny_qwen import (VISION_DEPTH, VISION_WIDTH, build_seeded, is_tiny_dir, load_tiny_dir, save_tiny_dir,
                           tiny_qwen3vl_config)
from vla.tokenizer import build_processor, load_qwen_tokenizer
from vla.vqa.format import VQASample

ASSISTANT_PREFIX = "<|im_start|>assistant\n"
END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class SFTConfig:
    """One fine-tuning run."""

    data: str = "data/grounding"
    backbone: str = "tiny"  # "tiny", a compact tiny directory, or a Qwen3-VL directory / hub id
    # the seeded tiny backbone's vision tower (blocks, width); the default is the shipped one, others only with "tiny"
    vision_depth: int = VISION_DEPTH
    vision_width: int = VISION_WIDTH
    out: str = "outputs/sft"
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    grad_clip: float = 1.0
    image_size: int = 128
    tune_visual: bool = True
    tune_llm: bool = True
    seed: int = 0
    num_workers: int = 1
    cpu_threads: int = 1
    eval_every: int = 500
    eval_samples: int = 300
    log_every: int = 25
    restrict_vocab: bool | None = None  # None: restrict for tiny backbones, full vocabulary otherwise
    tasks: tuple[str, ...] | None = None  # question types to train on (None: all in the data)
    notes: str = ""  # written into the manifest of a tiny backbone (how it was made)

    def __post_init__(self):
        for name in ("steps", "batch_size", "image_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.vision_depth < 2 or self.vision_width < 16 or self.vision_width % 16:
            raise ValueError(f"--vision-depth must be >= 2 and --vision-width a multiple of 16 (4 heads); got "
                             f"{self.vision_depth}, {self.vision_width}")
        if (self.vision_depth, self.vision_width) != (VISION_DEPTH, VISION_WIDTH) and self.backbone != TINY:
            raise ValueError(f"--vision-depth / --vision-width size the seeded tiny backbone's tower; --backbone "
                             f"{self.backbone} brings its own")
        if self.tasks is not None and not self.tasks:
            raise ValueError("--tasks is empty; name question types (comma-separated) or leave it out for all")


# ----- the model -----

class VLM(torch.nn.Module):
    """A Qwen3-VL trunk with its output layer; `answer_vocab` restricts the output rows (tiny backbones)."""

    def __init__(self, trunk, output_weight: torch.Tensor, processor, seed: int | None, source: str,
                 answer_vocab: list[int] | None = None, full=None):
        super().__init__()
        self.trunk = trunk
        self.full = full  # the Qwen3VLForConditionalGeneration a pretrained backbone came in (saved as a whole)
        self.output_weight = output_weight  # (vocab, hidden); tied to the embedding in Qwen3-VL-2B and the tiny model
        self.processor = processor
        self.seed = seed  # the tiny embedding's seed; None for pretrained backbones
        self.source = source
        self.answer_vocab = answer_vocab
        self.end_id = processor.tokenizer.convert_tokens_to_ids(END_OF_TURN)

    @property
    def is_tiny(self) -> bool:
        return self.seed is not None

    def hidden(self, inputs: dict) -> torch.Tensor:
        out = self.trunk(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
                         mm_token_type_ids=inputs["mm_token_type_ids"], use_cache=False)
        return out.last_hidden_state  # after the final norm, as the output layer expects

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the answer vocabulary (restricted) or the whole vocabulary."""
        if self.answer_vocab is None:
            return hidden @ self.output_weight.T
        rows = self.output_weight[torch.as_tensor(self.answer_vocab, device=hidden.device)]
        return hidden @ rows.T

    def to_vocab_index(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> class indices of `logits` (-100 stays -100)."""
        if self.answer_vocab is None:
            return token_ids
        table = torch.full((int(max(self.answer_vocab)) + 2,), -100, dtype=torch.long, device=token_ids.device)
        table[torch.as_tensor(self.answer_vocab, device=token_ids.device)] = torch.arange(len(self.answer_vocab),
                                                                                          device=token_ids.device)
        safe = token_ids.clamp(min=0, max=len(table) - 1)
        out = table[safe]
        out[token_ids < 0] = -100
        if (out[token_ids >= 0] < 0).any():
            raise ValueError("an answer token is outside the answer vocabulary")
        return out


def load_vlm(backbone: str, image_size: int, attn_implementation: str = "sdpa", vision_depth: int = VISION_DEPTH,
             vision_width: int = VISION_WIDTH) -> VLM:
    """The tiny model (seeded, its tower `vision_depth` x `vision_width`, or a compact directory) or a pretrained
    Qwen3-VL, ready for fine-tuning."""
    ref = resolve_backbone(backbone)
    if ref.is_tiny or is_tiny_dir(ref.source):
        from transformers import Qwen3VLModel  # lazy, as below: transformers' model code takes seconds to import

        if ref.is_tiny:
            config = tiny_qwen3vl_config(vision_depth, vision_width)
            trunk = build_seeded(Qwen3VLModel, 0, config, attn_implementation=attn_implementation)
            seed, vocab = 0, None
        else:
            trunk, manifest = load_tiny_dir(ref.source, attn_implementation)
            seed, vocab = int(manifest["seed"]), manifest.get("answer_vocab")
        weight = trunk.language_model.embed_tokens.weight
        return VLM(trunk, weight, build_processor(image_size, load_qwen_tokenizer()), seed, ref.source, vocab)
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    full = Qwen3VLForConditionalGeneration.from_pretrained(ref.source, attn_implementation=attn_implementation)
    processor = AutoProcessor.from_pretrained(ref.source)
    pixels = image_size * image_size
    processor.image_processor.size = {"shortest_edge": pixels, "longest_edge": pixels}
    return VLM(full.model, full.lm_head.weight, processor, None, ref.source, full=full)


# ----- batches -----

def load_images(root: Path, sample: VQASample, size: int) -> list[np.ndarray]:
    """The sample's images as uint8 HxWx3 arrays resized to size x size."""
    out = []
    for url in sample.image_urls:
        with Image.open(root / url) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            out.append(np.array(img))
    return out


def encode(processor, samples: list[VQASample], images: list[list[np.ndarray]], with_answers: bool) -> dict:
    """Processor inputs for a batch; with answers, `labels` marks the answer tokens and the end of turn."""
    texts = []
    for sample in samples:
        prompt = processor.apply_chat_template([{"role": "user", "content": sample.chat_content()}], tokenize=False,
                                               add_generation_prompt=True)
        texts.append(prompt + (sample.answer + END_OF_TURN if with_answers else ""))
    flat = [torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1) for imgs in images for img in imgs]
    processor.tokenizer.padding_side = "right"
    batch = dict(processor(text=texts, images=flat, padding=True, return_tensors="pt"))
    if with_answers:
        batch["labels"] = answer_labels(batch["input_ids"], batch["attention_mask"], processor.tokenizer)
    return batch


def answer_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer) -> torch.Tensor:
    """-100 everywhere but the tokens after the last assistant prefix (the answer and its end-of-turn)."""
    prefix = tokenizer(ASSISTANT_PREFIX, add_special_tokens=False).input_ids
    labels = torch.full_like(input_ids, -100)
    for row in range(input_ids.shape[0]):
        ids = input_ids[row].tolist()
        length = int(attention_mask[row].sum())
        start = None
        for i in range(length - len(prefix), -1, -1):
            if ids[i:i + len(prefix)] == prefix:
                start = i + len(prefix)
                break
        if start is None:
            raise ValueError("no assistant turn in the encoded sample")
        labels[row, start:length] = input_ids[row, start:length]
    return labels


class VQADataset(torch.utils.data.Dataset):
    """Samples with their images loaded at `size`."""

    def __init__(self, root: str | Path, samples: list[VQASample], size: int):
        self.root, self.samples, self.size = Path(root), samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int):
        sample = self.samples[idx]
        return sample, load_images(self.root, sample, self.size)


def _collate_with(processor):
    def collate(items):
        samples, images = zip(*items)
        return encode(processor, list(samples), list(images), with_answers=True)

    return collate


# ----- loss, decoding, evaluation -----

def answer_loss(model: VLM, batch: dict) -> tuple[torch.Tensor, float]:
    """(mean cross-entropy over answer tokens, token accuracy)."""
    hidden = model.hidden(batch)
    labels = batch["labels"]
    # Position i predicts token i + 1.
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.logits(hidden[:, :-1][keep])
    classes = model.to_vocab_index(targets[keep])
    loss = F.cross_entropy(logits.float(), classes)
    accuracy = float((logits.argmax(-1) == classes).float().mean())
    return loss, accuracy


@torch.no_grad()
def generate_answers(model: VLM, samples: list[VQASample], images: list[list[np.ndarray]],
                     max_new_tokens: int = 16) -> list[str]:
    """Greedy answers (no KV cache: answers are a few tokens) decoded with the tokenizer."""
    tok = model.processor.tokenizer
    batch = encode(model.processor, samples, images, with_answers=False)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = mask.sum(1)
    outputs = [[] for _ in samples]
    done = [False] * len(samples)
    for _ in range(max_new_tokens):
        hidden = model.hidden(batch)
        last = hidden[torch.arange(len(samples)), lengths - 1]
        choice = model.logits(last).argmax(-1)
        token = torch.as_tensor(model.answer_vocab, dtype=torch.long)[choice] if model.answer_vocab else choice
        for i, t in enumerate(token.tolist()):
            if not done[i]:
                if t == model.end_id:
                    done[i] = True
                else:
                    outputs[i].append(t)
        if all(done):
            break
        # Append each row's new token at its own end (right padding), growing the batch by one column.
        pad = torch.full((len(samples), 1), tok.pad_token_id or 0, dtype=ids.dtype)
        ids, mask = torch.cat([ids, pad], 1), torch.cat([mask, torch.zeros_like(pad)], 1)
        ids[torch.arange(len(samples)), lengths] = token
        mask[torch.arange(len(samples)), lengths] = 1
        lengths = lengths + 1
        batch = {**batch, "input_ids": ids, "attention_mask": mask,
                 "mm_token_type_ids": torch.cat([batch["mm_token_type_ids"], torch.zeros_like(pad)], 1)}
    return [tok.decode(o).strip() for o in outputs]


@dataclass
class EvalResult:
    """Exact-match accuracy per question type, and task-specific errors (pixels, centimetres)."""

    accuracy: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{k} {100 * v:.1f}% (n={self.counts[k]})" for k, v in sorted(self.accuracy.items())]
        parts += [f"{k} {v:.2f}" for k, v in sorted(self.errors.items())]
        return "; ".join(parts)


def spread(samples: list[VQASample], count: int) -> list[VQASample]:
    """Up to `count` samples drawn across the list, the same draw every call (so every question type and scene is
    represented in proportion). Not a fixed stride: a stride that is a multiple of the questions per frame picks
    one question type only (it did: 7,356 rows and 6 questions per frame gave stride 24, every pick a target
    question about image 1)."""
    if count <= 0:
        return []
    if count >= len(samples):
        return list(samples)
    picks = np.sort(np.random.default_rng(0).choice(len(samples), size=count, replace=False))
    return [samples[i] for i in picks]


def evaluate(model: VLM, root: Path, samples: list[VQASample], size: int, batch_size: int = 32,
             scorer=None) -> EvalResult:
    """Greedy answers on samples; exact match per task, plus whatever `scorer(sample, answer)` adds."""
    model.eval()
    hits, counts, extra = {}, {}, {}
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        answers = generate_answers(model, chunk, [load_images(root, s, size) for s in chunk])
        for sample, answer in zip(chunk, answers):
            counts[sample.task] = counts.get(sample.task, 0) + 1
            hits[sample.task] = hits.get(sample.task, 0) + (answer == sample.answer)
            if scorer is not None:
                for key, value in scorer(sample, answer).items():
                    extra.setdefault(key, []).append(value)
    model.train()
    return EvalResult({k: hits[k] / counts[k] for k in counts}, counts,
                      {k: float(np.mean(v)) for k, v in extra.items()})


# ----- training -----

def collect_answer_vocab(processor, samples: list[VQASample]) -> list[int]:
    """Every token id that occurs in an answer, plus the end of turn."""
    tok = processor.tokenizer
    ids = {tok.convert_tokens_to_ids(END_OF_TURN)}
    for answer in {s.answer for s in samples}:
        ids.update(tok(answer, add_special_tokens=False).input_ids)
    return sorted(ids)


def set_trainable(model: VLM, cfg: SFTConfig) -> list[torch.nn.Parameter]:
    """Vision tower and/or LLM layers train; the tiny model's embedding never does (it is rebuilt from its seed)."""
    model.requires_grad_(False)
    if cfg.tune_visual:
        model.trunk.visual.requires_grad_(True)
    if cfg.tune_llm:
        model.trunk.language_model.requires_grad_(True)
        if model.is_tiny:
            model.trunk.language_model.embed_tokens.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def select_tasks(samples: list[VQASample], tasks: tuple[str, ...], where: str) -> list[VQASample]:
    """The samples of the named question types; a type the samples do not have is refused in one line."""
    present = sorted({s.task for s in samples})
    missing = [t for t in tasks if t not in present]
    if missing:
        raise ValueError(f"--tasks {','.join(missing)}: no such questions in {where} (it has: {', '.join(present)})")
    return [s for s in samples if s.task in tasks]


def train(cfg: SFTConfig, train_samples: list[VQASample], eval_samples: list[VQASample], log=print,
          scorer=None, manifest_extra: dict | None = None, trainable=None, finalize=None) -> Path:
    """Fine-tune and write the result to cfg.out (compact tiny directory or a Qwen3-VL directory).

    trainable(model, cfg) -> parameters replaces set_trainable (e.g. LoRA adapters); finalize(model) runs before
    saving (e.g. merging adapters into the weights, so the directory is a plain Qwen3-VL).
    """
    if not train_samples:
        raise ValueError(f"{cfg.data}: no training samples")
    if cfg.tasks is not None:
        total = len(train_samples)
        train_samples = select_tasks(train_samples, cfg.tasks, f"{cfg.data} train")
        eval_samples = [s for s in eval_samples if s.task in cfg.tasks]
        log(f"--tasks {','.join(cfg.tasks)}: training on {len(train_samples)} of {total} questions")
    torch.manual_seed(cfg.seed)
    if cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    model = load_vlm(cfg.backbone, cfg.image_size, vision_depth=cfg.vision_depth, vision_width=cfg.vision_width)
    restrict = model.is_tiny if cfg.restrict_vocab is None else cfg.restrict_vocab
    if restrict:
        vocab = set(collect_answer_vocab(model.processor, train_samples + eval_samples))
        model.answer_vocab = sorted(vocab | set(model.answer_vocab or ()))
    params = (trainable or set_trainable)(model, cfg)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    warmup = max(1, int(cfg.warmup_ratio * cfg.steps))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    root = Path(cfg.data)
    dataset = VQADataset(root, train_samples, cfg.image_size)
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=cfg.steps * cfg.batch_size,
                                             generator=generator)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                         num_workers=cfg.num_workers, collate_fn=_collate_with(model.processor),
                                         persistent_workers=cfg.num_workers > 0)
    eval_pick = spread(eval_samples, cfg.eval_samples)
    out = Path(cfg.out)
    history = []
    model.train()
    bar = tqdm(total=cfg.steps, desc="sft", unit="step", dynamic_ncols=True, mininterval=1.0)
    started, window = time.perf_counter(), []
    for step, batch in enumerate(loader, 1):
        loss, accuracy = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window.append((loss.item(), accuracy))
        if step % cfg.log_every == 0:
            mean_loss, mean_acc = np.mean(window, axis=0)
            bar.set_postfix(loss=f"{mean_loss:.3f}", tok_acc=f"{mean_acc:.3f}", refresh=False)
            history.append({"step": step, "loss": float(mean_loss), "token_accuracy": float(mean_acc),
                            "lr": scheduler.get_last_lr()[0], "elapsed_s": time.perf_counter() - started})
            window = []
        if eval_pick and (step % cfg.eval_every == 0 or step == cfg.steps):
            result = evaluate(model, root, eval_pick, cfg.image_size, scorer=scorer)
            history.append({"step": step, "eval": result.accuracy, "eval_errors": result.errors})
            tqdm.write(f"step {step}: {result.line()}")
        bar.update(1)
    bar.close()
    if finalize is not None:
        finalize(model)
    return save_vlm(model, out, cfg, history, manifest_extra or {})


def save_vlm(model: VLM, out: Path, cfg: SFTConfig, history: list[dict], manifest_extra: dict) -> Path:
    """Compact directory for the tiny model, a Qwen3-VL directory (weights, config, processor) otherwise."""
    if model.is_tiny:
        manifest = {"seed": model.seed, "image_size": cfg.image_size, "answer_vocab": model.answer_vocab,
                    "base": model.source, "made_by": "vla.vqa.sft", "config": dataclasses.asdict(cfg),
                    **manifest_extra}
        save_tiny_dir(model.trunk, out, manifest)
    else:
        model.full.save_pretrained(out)
        model.processor.save_pretrained(out)
    atomic_write_json(out / "sft_history.json", history)
    return out
