"""The ground floor every other package stands on, importing neither torch nor the model.

`contract.embodiments`: the observation/action contract (keys, cameras, image size, horizon, control rate) and the
embodiment registry; `contract.spec`: the ObservationSpec that envs, datasets, checkpoints and policies pass as one
value; `contract.lookup`: name look-up with "did you mean"; `contract.cli`: every dataclass field a command-line
flag; `contract.files`: atomic file writes.
"""
