"""Chunk latency (backbone / VL adapter / head steps) and parameter counts per preset.

CPU (this machine):   python scripts/benchmark_model.py
GPU (latency bar):    python scripts/benchmark_model.py --presets groot-n1.5 --device cuda --dtype bfloat16 --compile \
                          --backbone /path/to/Qwen3-VL-2B-Instruct      (or --backbone random-2b: same architecture,
                                                                         random weights, no download)
groot-n1.5 runs head-only with random VL features unless --backbone is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.embodiments import get_embodiment  # noqa: E402
from vla.action_head import FlowMatchingActionHead  # noqa: E402
from vla.backbone import QwenVLBackbone, load_backbone, resolve_dtype  # noqa: E402
from vla.config import ActionHeadConfig, BackboneConfig  # noqa: E402
from vla.flow_matching import euler_sample  # noqa: E402
from vla.presets import PRESETS, get_preset  # noqa: E402
from vla.tokenizer import IMAGE_TOKEN_ID, VOCAB_SIZE, build_processor, load_qwen_tokenizer  # noqa: E402

REFERENCE_HEAD_PARAMS = 1.07e9  # REFERENCE.md section 3: DiT ~550 M, VL self-attention ~201 M, the rest encoders
RANDOM_2B = "random-2b"


def analytic_head_params(c: ActionHeadConfig) -> dict[str, int]:
    """Closed-form parameter count from the REFERENCE description (independent of the module code)."""
    d, D, h, n = c.input_embedding_dim, c.backbone_dim, c.hidden_size, c.num_embodiments

    def linear(i, o):
        return i * o + o

    ada = linear(d, 2 * d)
    ffn_d = linear(d, 4 * d) + linear(4 * d, d)
    self_attn = 4 * linear(d, d)
    cross_attn = 2 * linear(d, d) + 2 * linear(D, d)
    n_cross = (c.num_layers + 1) // 2
    dit = (n_cross * (ada + cross_attn + ffn_d) + (c.num_layers - n_cross) * (ada + self_attn + ffn_d)
           + linear(c.timestep_embed_dim, d) + linear(d, d) + linear(d, 2 * d) + linear(d, h))
    vl = 2 * D + c.vl_layers * (4 * linear(D, D) + linear(D, 4 * D) + linear(4 * D, D))
    return {
        "vl_self_attention": vl,
        "dit": dit,
        "state_encoder": n * (linear(c.max_state_dim, h) + linear(h, d)),
        "action_encoder": n * (linear(c.max_action_dim, d) + linear(2 * d, d) + linear(d, d)),
        "action_decoder": n * (linear(h, h) + linear(h, c.max_action_dim)),
        "embeddings": (c.num_future_tokens + c.max_seq_len) * d,
    }


def head_params(head: FlowMatchingActionHead) -> dict[str, int]:
    """Counted from the built module, grouped like analytic_head_params."""
    count = {name: sum(p.numel() for p in mod.parameters()) for name, mod in head.named_children()}
    count["embeddings"] = count.pop("future_tokens") + count.pop("position_embedding")
    return count


def random_2b_backbone(select_layer: int, image_size: int) -> QwenVLBackbone:
    """Qwen3-VL-2B architecture (REFERENCE.md section 4) with random weights: for latency without a download."""
    from transformers import Qwen3VLConfig, Qwen3VLModel  # lazy: seconds to import, for the random 2B only

    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=VOCAB_SIZE, hidden_size=2048, intermediate_size=6144, num_hidden_layers=select_layer,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
            rope_parameters=dict(rope_type="default", rope_theta=5_000_000.0, mrope_section=[24, 20, 20], mrope_interleaved=True),
        ),
        vision_config=dict(
            depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16, temporal_patch_size=2,
            spatial_merge_size=2, out_hidden_size=2048, num_position_embeddings=2304, deepstack_visual_indexes=[5, 11, 17],
        ),
        image_token_id=IMAGE_TOKEN_ID, tie_word_embeddings=True,
    )
    config._attn_implementation = "sdpa"
    cfg = BackboneConfig(name_or_path=RANDOM_2B, select_layer=select_layer, image_size=image_size)
    return QwenVLBackbone(Qwen3VLModel(config), build_processor(image_size, load_qwen_tokenizer()), cfg)


def timed(fn, device: str, iters: int, warmup: int) -> tuple[float, object]:
    """Median wall time of fn() in ms (CUDA-synchronized), and its last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(iters):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def bench(name: str, args) -> dict:
    cfg = get_preset(name)
    device, dtype = args.device, resolve_dtype(args.dtype, args.device)
    emb = get_embodiment(args.embodiment)
    backbone = None
    if cfg.backbone.is_tiny:
        backbone = load_backbone(cfg.backbone, device)
    elif args.backbone == RANDOM_2B:
        backbone = random_2b_backbone(args.select_layer, cfg.backbone.image_size)
    elif args.backbone:
        backbone = load_backbone(
            dataclasses.replace(cfg.backbone, name_or_path=args.backbone, select_layer=args.select_layer), device
        )
    if backbone is not None:
        backbone = backbone.to(device=device, dtype=dtype).eval()

    torch.manual_seed(0)
    head = FlowMatchingActionHead(cfg.head).to(device=device, dtype=dtype).eval()
    result = {"preset": name, "device": device, "dtype": str(dtype).removeprefix("torch."), "batch": args.batch,
              "steps": cfg.head.num_inference_steps, "params": head_params(head)}
    result["params"]["head_total"] = sum(p.numel() for p in head.parameters())
    analytic = analytic_head_params(cfg.head)
    result["params_analytic"] = analytic | {"head_total": sum(analytic.values())}

    b, size = args.batch, cfg.backbone.image_size
    images = torch.randint(0, 256, (b, len(emb.cameras), size, size, 3), dtype=torch.uint8)
    instructions = ["pick the mug from the cabinet and place it on the counter"] * b
    with torch.inference_mode():
        if backbone is not None:
            result["params"]["backbone_kept"] = sum(p.numel() for p in backbone.parameters())
            result["backbone"] = backbone.cfg.name_or_path
            result["select_layer"] = backbone.num_layers
            ms, inputs = timed(lambda: backbone.preprocess(images, instructions), device, args.iters, 1)
            result["ms_backbone_preprocess"] = ms
            forward = backbone.forward_features
            if args.compile:
                backbone.model.language_model = torch.compile(backbone.model.language_model, dynamic=False)
            ms, out = timed(lambda: forward(inputs), device, args.iters, args.warmup)
            result["ms_backbone_forward"] = ms
            features, mask = out.features, out.attention_mask
            result["vl_tokens"] = features.shape[1]
        else:
            result["backbone"] = "none (random VL features)"
            features = torch.randn(b, args.vl_tokens, cfg.head.backbone_dim, device=device, dtype=dtype)
            mask = torch.ones(b, args.vl_tokens, dtype=torch.bool, device=device)
            result["vl_tokens"] = args.vl_tokens
        state = torch.randn(b, cfg.head.max_state_dim, device=device, dtype=dtype)

        adapt, velocity = head.adapt, head.velocity
        if args.compile:
            adapt, velocity = torch.compile(head.adapt, dynamic=False), torch.compile(head.velocity, dynamic=False)
        ms, vl = timed(lambda: adapt(features, mask), device, args.iters, args.warmup)
        result["ms_vl_adapter"] = ms

        def denoise():
            s = head.encode_state(state, emb.id)
            noise = torch.randn(b, cfg.head.action_horizon, cfg.head.max_action_dim, device=device, dtype=dtype)
            return euler_sample(lambda x, t: velocity(vl, mask, s, x, t, emb.id), noise, cfg.head.num_inference_steps,
                                cfg.head.num_timestep_buckets)

        ms, _ = timed(denoise, device, args.iters, args.warmup)
        result["ms_head_all_steps"] = ms
        result["ms_head_per_step"] = ms / cfg.head.num_inference_steps
    result["ms_chunk"] = sum(result.get(k, 0.0) for k in
                             ("ms_backbone_preprocess", "ms_backbone_forward", "ms_vl_adapter", "ms_head_all_steps"))
    return result


def report(r: dict) -> str:
    p, a = r["params"], r["params_analytic"]
    lines = [f"== {r['preset']}  ({r['device']}, {r['dtype']}, batch {r['batch']}, {r['steps']} steps, "
             f"{r['vl_tokens']} VL tokens, backbone: {r['backbone']})"]
    for key in ("vl_self_attention", "dit", "state_encoder", "action_encoder", "action_decoder", "embeddings", "head_total"):
        lines.append(f"  params {key:<18} {p[key] / 1e6:10.3f} M   analytic {a[key] / 1e6:10.3f} M")
    if "backbone_kept" in p:
        lines.append(f"  params {'backbone (kept)':<18} {p['backbone_kept'] / 1e6:10.3f} M   select_layer {r['select_layer']}")
    if r["preset"] == "groot-n1.5":
        dev = p["head_total"] / REFERENCE_HEAD_PARAMS - 1
        lines.append(f"  head vs REFERENCE ~1.07 B: {dev:+.2%} ({'within' if abs(dev) <= 0.02 else 'OUTSIDE'} 2%)")
    for key in ("ms_backbone_preprocess", "ms_backbone_forward", "ms_vl_adapter", "ms_head_all_steps", "ms_head_per_step",
                "ms_chunk"):
        if key in r:
            lines.append(f"  {key:<24} {r[key]:9.2f} ms")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "groot-n1.5"], choices=list(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the LLM, VL adapter and DiT step")
    parser.add_argument("--backbone", default=None, help=f"for non-tiny presets: a Qwen3-VL dir / hub id, or {RANDOM_2B}")
    parser.add_argument("--select-layer", type=int, default=16, help="LLM cut for non-tiny backbones (issue: 16)")
    parser.add_argument("--embodiment", default="robocasa_panda_omron")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--vl-tokens", type=int, default=190, help="head-only: 3 views x 49 + chat/instruction tokens")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.dtype in ("bf16", "fp32", "fp16"):
        args.dtype = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}[args.dtype]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    for name in args.presets:
        results.append(bench(name, args))
        print(report(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
