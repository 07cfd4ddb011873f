"""Cross-view relation (XVR) questions: generated from the simulator, read from the published data, scored.

tasks.py     the paper's 8 task types, their chance rates, the paper's XVR-Eval numbers, published task ids
rig.py       calibrated views: random camera rigs, RGB + depth rendering, surface points, visibility, SSIM
draw.py      markers, arrows and dots drawn on views
questions.py one builder per task type: rendered views in, a multiple-choice question with one right answer out
generate.py  scenes (an expert episode + random rigs) -> questions in the XVR row layout; resumable, in parallel
data.py      the generated or published layout read into VQASamples (task names mapped, options filled in)
scoring.py   answer normalization, per-task accuracy, the paper-format table
predict.py   a backbone's greedy answers, appended to a predictions file (resumable)
finetune.py  LoRA adapters for vla/vqa/sft.py, merged into the weights before saving
"""
