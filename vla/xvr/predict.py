"""A backbone's answers to XVR questions (greedy decoding), appended to a predictions file so a killed run resumes."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from vla.vqa.format import VQASample


def answer_tokens(model, samples: list[VQASample]) -> list[int]:
    """Token ids of every answer and option (and the end of turn) of `samples`."""
    from vla.vqa.sft import collect_answer_vocab  # lazy: imports torch

    phrased = [VQASample(s.sample_id, s.task, s.prompt_blocks, text) for s in samples
               for text in {s.answer, *s.options}]
    return collect_answer_vocab(model.processor, phrased)


def predict(model, samples: list[VQASample], root: Path, image_size: int, out_path: Path, batch_size: int = 16,
            max_new_tokens: int = 8, log=print) -> dict[str, str]:
    """sample_id -> the model's answer for every sample; rows already in out_path are kept, not recomputed."""
    from vla.vqa.sft import generate_answers, load_images  # lazy: imports torch

    if model.is_tiny:
        # The tiny model scores only the tokens its training saw answers in; add this data's answer words (the
        # rows of its tied embedding exist for every token) so it can say them at all. Weights are unchanged.
        model.answer_vocab = sorted(set(model.answer_vocab or ()) | set(answer_tokens(model, samples)))
    done: dict[str, str] = {}
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["sample_id"]] = row["prediction"]
    todo = [s for s in samples if s.sample_id not in done]
    model.eval()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a") as f, tqdm(total=len(todo), desc="xvr-eval", unit="q") as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            answers = generate_answers(model, chunk, [load_images(root, s, image_size) for s in chunk],
                                       max_new_tokens=max_new_tokens)
            for sample, answer in zip(chunk, answers):
                done[sample.sample_id] = answer
                f.write(json.dumps({"sample_id": sample.sample_id, "task": sample.task, "prediction": answer,
                                    "answer": sample.answer}) + "\n")
            f.flush()
            bar.update(len(chunk))
    return done
