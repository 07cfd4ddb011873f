"""`rollout.py --compare A0,A1,A2 B0,B1,B2`: pooling training seeds, the tables, and bad input (no simulator)."""

import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import rollouts.cli
from rollouts.ablation import (
    POOLED_NOTE,
    comparison_table,
    difference_interval,
    per_seed_differences,
    seed_level_interval,
    write_comparison,
)
from rollouts.cli import main, parse_args
from rollouts.config import compare_sides
from rollouts.metrics import TaskSummary, pool_summaries, wilson_interval

TASKS = ("CoffeePressButton", "TurnOffMicrowave", "PnPCabToCounter")


def _seed(successes, episodes=(50, 50, 50)) -> dict[str, TaskSummary]:
    """One training seed's summaries: successes[i] of episodes[i] on TASKS[i]."""
    return {t: TaskSummary(t, n, k, 0, 100.0, ((0, k / n if n else 0.0),))
            for t, k, n in zip(TASKS, successes, episodes)}


A_SEEDS = [_seed((21, 10, 5)), _seed((24, 12, 4)), _seed((19, 9, 6))]
B_SEEDS = [_seed((23, 20, 7)), _seed((21, 19, 4)), _seed((24, 22, 8))]


def test_pooling_sums_successes_and_episodes_and_uses_wilson():
    runs = [TaskSummary("CoffeePressButton", 50, 21, 1, 100.0, ((0, 0.4), (1, 0.44))),
            TaskSummary("CoffeePressButton", 40, 30, 0, 130.0, ((0, 0.7), (1, 0.8))),
            TaskSummary("CoffeePressButton", 0, 0, 2, math.nan, ())]
    pooled = pool_summaries(runs)
    assert (pooled.task, pooled.episodes, pooled.successes, pooled.errors) == ("CoffeePressButton", 90, 51, 3)
    assert pooled.rate == pytest.approx(51 / 90)
    assert pooled.interval == wilson_interval(51, 90)
    assert pooled.mean_steps == pytest.approx((50 * 100 + 40 * 130) / 90)  # by episodes; the empty run left out
    assert dict(pooled.per_seed) == pytest.approx({0: 0.55, 1: 0.62})  # each evaluation seed, mean over the runs
    assert pool_summaries(runs[:1]) == runs[0]  # one run pools to itself
    with pytest.raises(ValueError, match="runs of one task"):
        pool_summaries([runs[0], TaskSummary("TurnOffMicrowave", 10, 1, 0, 90.0, ())])


def test_per_seed_differences_are_paired_by_position():
    assert per_seed_differences(A_SEEDS, B_SEEDS, "CoffeePressButton") == pytest.approx([0.04, -0.06, 0.10])
    assert per_seed_differences(A_SEEDS, B_SEEDS, "TurnOffMicrowave") == pytest.approx([0.20, 0.14, 0.26])
    empty = [_seed((21, 10, 0), episodes=(50, 50, 0))]
    assert math.isnan(per_seed_differences(empty, B_SEEDS[:1], "PnPCabToCounter")[0])


def test_pooled_table():
    lines = comparison_table(A_SEEDS, B_SEEDS).splitlines()
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert cells[0] == ["task", "A pooled % [95% CI]", "B pooled % [95% CI]", "B - A pooled [95% CI]",
                        "B - A per seed", "B - A over seeds [95% t]", "episodes", "paper base -> XVR"]
    assert cells[1] == ["CoffeePressButton", "42.7 [35.0, 50.7]", "45.3 [37.6, 53.3]", "+2.7 [-8.5, +13.7]",
                        "+4, -6, +10", "+2.7 [-17.4, +22.7]", "150/150", "83.1 -> 89.3 (+6.2)"]
    d, lo, hi = difference_interval(pool_summaries([s["CoffeePressButton"] for s in A_SEEDS]),
                                    pool_summaries([s["CoffeePressButton"] for s in B_SEEDS]))
    assert (round(100 * d, 1), round(100 * lo, 1), round(100 * hi, 1)) == (2.7, -8.5, 13.7)
    assert cells[2][4] == "+20, +14, +26" and cells[3][4] == "+4, +0, +4"
    assert cells[4] == ["mean", "24.4", "32.9", "+8.4", "+9, +3, +13", "+8.4 [-4.9, +21.8]", "53.3 -> 66.9"]


def test_the_seed_level_interval_takes_the_training_seeds_as_the_units():
    # Microwave's per-seed differences +20, +14, +26 points: mean 20, sd 6, t(0.975, df 2) = 4.303 from a t table.
    mean, lo, hi = seed_level_interval([0.20, 0.14, 0.26])
    half = 4.303 * 0.06 / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((0.20, 0.20 - half, 0.20 + half), abs=1e-4)
    # Wider than the pooled interval when the seeds disagree; nothing to say with one seed.
    assert seed_level_interval([0.04, -0.06, 0.10])[1] < -0.17
    assert all(math.isnan(v) for v in seed_level_interval([0.1, math.nan]))


SINGLE_TABLE = "\n".join([  # trailing blanks included: every column is padded to its width
"task               A success % [95% CI]  B success % [95% CI]  B - A [95% CI]       episodes  paper base -> XVR   ",
"CoffeePressButton  42.0 [29.4, 55.8]     56.0 [42.3, 68.8]     +14.0 [-5.4, +32.0]  50/50     83.1 -> 89.3 (+6.2) ",
"TurnOffMicrowave   20.0 [11.2, 33.0]     18.0 [9.8, 30.8]      -2.0 [-17.4, +13.5]  50/50     45.7 -> 72.7 (+27.0)",
"PnPCabToCounter    n/a                   8.0 [3.2, 18.8]       n/a                  0/50      31.1 -> 38.8 (+7.7) ",
"mean               31.0                  27.3                  -3.7                           53.3 -> 66.9        ",
])

SINGLE_REPORT = """# Backbone ablation

- A: `base-ck` (results: `outputs/rollouts/base`)
- B: `xvr-ck` (results: `outputs/rollouts/xvr`)
- Both ran exactly the same episodes (same seeds, same initial states).
- Intervals: Wilson 95% per checkpoint; Newcombe hybrid-score 95% for the difference.
- Paper: XVR (CVPR 2026), RoboCasa, Qwen3-VL-2B base -> XVR backbone; different scenes and training budget,
  so compare the direction and size of the gap, not absolute numbers.

| task | A success % [95% CI] | B success % [95% CI] | B - A [95% CI] | episodes | paper base -> XVR |
|---|---|---|---|---|---|
| CoffeePressButton | 42.0 [29.4, 55.8] | 56.0 [42.3, 68.8] | +14.0 [-5.4, +32.0] | 50/50 | 83.1 -> 89.3 (+6.2) |
| TurnOffMicrowave | 20.0 [11.2, 33.0] | 18.0 [9.8, 30.8] | -2.0 [-17.4, +13.5] | 50/50 | 45.7 -> 72.7 (+27.0) |
| PnPCabToCounter | n/a | 8.0 [3.2, 18.8] | n/a | 0/50 | 31.1 -> 38.8 (+7.7) |
| mean | 31.0 | 27.3 | -3.7 |  | 53.3 -> 66.9 |

![success](success.png)
"""

# One checkpoint per side: the table and report as before pooling existed (pinned from that version's output).
SINGLE_A, SINGLE_B = _seed((21, 10, 0), episodes=(50, 50, 0)), _seed((28, 9, 4))


def test_one_seed_table_and_report_are_unchanged(tmp_path):
    assert comparison_table([SINGLE_A], [SINGLE_B]) == SINGLE_TABLE
    report = write_comparison(tmp_path, (["base-ck"], ["xvr-ck"]), [SINGLE_A], [SINGLE_B],
                              ([Path("outputs/rollouts/base")], [Path("outputs/rollouts/xvr")]))
    assert report.read_text() == SINGLE_REPORT
    assert (tmp_path / "success.png").stat().st_size > 0


def test_pooled_report_says_what_the_interval_counts(tmp_path):
    names = ([f"base-s{i}" for i in range(3)], [f"xvr-s{i}" for i in range(3)])
    dirs = ([Path(f"outputs/rollouts/{n}") for n in names[0]], [Path(f"outputs/rollouts/{n}") for n in names[1]])
    text = write_comparison(tmp_path, names, A_SEEDS, B_SEEDS, dirs).read_text()
    assert f"- {POOLED_NOTE}\n" in text
    assert "not seed-to-seed variance" in POOLED_NOTE
    assert "  - `xvr-s2` (results: `outputs/rollouts/xvr-s2`)" in text
    assert ("| CoffeePressButton | 42.7 [35.0, 50.7] | 45.3 [37.6, 53.3] | +2.7 [-8.5, +13.7] | +4, -6, +10 | "
            "+2.7 [-17.4, +22.7] | 150/150 |" in text)


def test_comma_lists_parse_into_paired_sides():
    config = parse_args(["--compare", "runs/a0,runs/a1,runs/a2", "runs/b0,runs/b1,runs/b2", "--task", "all"])
    assert config.compare == ("runs/a0,runs/a1,runs/a2", "runs/b0,runs/b1,runs/b2")
    assert compare_sides(config) == (("runs/a0", "runs/a1", "runs/a2"), ("runs/b0", "runs/b1", "runs/b2"))
    assert compare_sides(parse_args(["--compare", "runs/a", "runs/b"])) == (("runs/a",), ("runs/b",))
    assert compare_sides(parse_args(["--compare", "runs/a,runs/b"])) == (("runs/a",), ("runs/b",))


@pytest.mark.parametrize(
    "sides,message",
    [
        (["a0,a1,a2", "b0,b1"], "--compare: A lists 3 and B 2 checkpoints; give one per training seed on each side"),
        (["a0", "b0,b1"], "--compare: A lists 1 and B 2 checkpoints"),
        (["a0,,a2", "b0,b1,b2"], "--compare: side A 'a0,,a2' has an empty entry; separate checkpoints with one comma"),
        (["a0,a1", "b0,b1,"], "--compare: side B 'b0,b1,' has an empty entry"),
        (["a0,a1,a0", "b0,b1,b2"], "--compare lists a0 twice; give each training seed's checkpoint once"),
        (["runs/a0,runs/a1", "runs/b0,runs/a1/"], "--compare lists runs/a1/ twice"),
        (["a0", "a0"], "--compare lists a0 twice"),
        (["a0,a1", "b0,b1", "c0,c1"], "--compare takes exactly two checkpoints (A B); got 3"),
    ],
)
def test_bad_compare_input_is_one_line(sides, message, capsys):
    assert main(["--compare", *sides, "--task", "all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_two_spellings_of_one_checkpoint_are_refused_before_evaluating(monkeypatch, capsys):
    import checkpoints.format

    newest = Path("/ckpts/runs/base-s0/checkpoint-000100")
    monkeypatch.setattr(checkpoints.format, "resolve_checkpoint",
                        lambda c: newest if c.startswith("runs/base-s0") else Path("/ckpts") / c)
    monkeypatch.setattr(rollouts.cli, "evaluate", lambda *a, **k: pytest.fail("evaluated before refusing"))
    assert main(["--compare", "runs/base-s0,runs/base-s1", "runs/xvr-s0,runs/base-s0/checkpoint-000100"]) == 2
    err = capsys.readouterr().err
    assert "runs/base-s0 and runs/base-s0/checkpoint-000100 are the same checkpoint" in err and err.count("\n") == 1


def _fake_evaluate(calls):
    by_checkpoint = {f"runs/base-s{i}": s for i, s in enumerate(A_SEEDS)}
    by_checkpoint.update({f"runs/xvr-s{i}": s for i, s in enumerate(B_SEEDS)})

    def evaluate(config, checkpoint):
        calls.append((config.compare, checkpoint))
        name = checkpoint.split("/")[-1]
        return SimpleNamespace(name=name, out_dir=Path("outputs/rollouts") / name, summaries=by_checkpoint[checkpoint])

    return evaluate


def test_compare_evaluates_every_checkpoint_and_pools(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(rollouts.cli, "evaluate", _fake_evaluate(calls))
    monkeypatch.setattr(rollouts.cli, "OUTPUT_ROOT", tmp_path)
    a, b = ",".join(f"runs/base-s{i}" for i in range(3)), ",".join(f"runs/xvr-s{i}" for i in range(3))
    assert main(["--compare", a, b, "--task", "all", "--episodes", "50"]) == 0
    assert calls == [((), f"runs/{side}-s{i}") for side in ("base", "xvr") for i in range(3)]
    out = capsys.readouterr().out
    assert "A = base-s0, base-s1, base-s2\nB = xvr-s0, xvr-s1, xvr-s2" in out
    assert comparison_table(A_SEEDS, B_SEEDS) in out and POOLED_NOTE in out
    (report,) = tmp_path.glob("compare-base-s0-vs-xvr-s0-3seeds-*/report.md")
    assert "+4, -6, +10" in report.read_text()


def test_compare_with_one_checkpoint_per_side_keeps_its_dir(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(rollouts.cli, "evaluate", _fake_evaluate([]))
    monkeypatch.setattr(rollouts.cli, "OUTPUT_ROOT", tmp_path)
    assert main(["--compare", "runs/base-s0", "runs/xvr-s0", "--task", "all"]) == 0
    assert comparison_table(A_SEEDS[:1], B_SEEDS[:1]) in capsys.readouterr().out
    assert (tmp_path / "compare-base-s0-vs-xvr-s0" / "report.md").is_file()
