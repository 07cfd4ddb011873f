import json

import pytest
from scipy.stats import chi2_contingency

from rollouts.metrics import format_rate, same_rate_p_value, summarize, wilson_interval
from rollouts.results import EpisodeKey, EpisodeRecord, ResultsLog
from rollouts.seeding import episode_seed


@pytest.mark.parametrize(
    "successes,n,expected",
    [(8, 10, (0.490, 0.943)), (0, 10, (0.0, 0.278)), (10, 10, (0.722, 1.0)), (25, 50, (0.366, 0.634))],
)
def test_wilson_interval_matches_known_values(successes, n, expected):
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(expected[0], abs=5e-4) and hi == pytest.approx(expected[1], abs=5e-4)


def test_wilson_interval_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(11, 10)


def _record(task="CoffeePressButton", index=0, success=True, base_seed=0, error=""):
    return EpisodeRecord(task, base_seed, index, episode_seed(base_seed, task, index), success, 10, 0.5, 0, 0, error)


def test_same_rate_p_value_matches_a_contingency_table_test():
    wins, n = [3, 5, 1, 2, 6], [10] * 5  # a learning curve's five checkpoints, 10 episodes each
    expected = chi2_contingency([wins, [k - w for w, k in zip(wins, n)]], correction=False)[1]
    assert same_rate_p_value(wins, n) == pytest.approx(expected, rel=1e-9)
    assert 0.05 < same_rate_p_value(wins, n) < 0.2  # these five are not told apart by 10 episodes each
    assert same_rate_p_value([9, 24], [50, 50]) < 0.01  # 18% vs 48% on 50 episodes each is


def test_same_rate_p_value_is_none_when_undefined():
    assert same_rate_p_value([3], [10]) is None  # one group
    assert same_rate_p_value([0, 0], [10, 10]) is None  # nothing ever succeeded
    assert same_rate_p_value([10, 5], [10, 5]) is None  # everything succeeded
    assert same_rate_p_value([0, 4], [0, 10]) is None  # an empty group is left out: one group remains


def test_summary_counts_errors_apart_and_splits_seeds():
    records = [_record(index=i, success=i < 8) for i in range(10)]
    records += [_record(index=i, base_seed=1, success=i < 4) for i in range(10)]
    records.append(_record(index=10, success=False, error="env crashed 3 times"))
    summary = summarize([r.__dict__ for r in records], tasks=["CoffeePressButton", "TurnOffMicrowave"])
    coffee = summary["CoffeePressButton"]
    assert (coffee.episodes, coffee.successes, coffee.errors) == (20, 12, 1)
    assert coffee.per_seed == ((0, 0.8), (1, 0.4))
    assert coffee.seed_std == pytest.approx(0.2828, abs=1e-4)
    assert summary["TurnOffMicrowave"].episodes == 0
    assert format_rate(coffee).startswith(" 60.0% [")


def test_episode_seeds_are_stable_and_distinct():
    assert episode_seed(0, "TurnOffMicrowave", 3) == episode_seed(0, "TurnOffMicrowave", 3)
    seeds = {episode_seed(s, t, i) for s in range(3) for t in ("A", "B") for i in range(50)}
    assert len(seeds) == 300
    # Pinned so a change in derivation (which would silently change every benchmark episode) fails loudly.
    assert episode_seed(0, "TurnOffMicrowave", 0) == 1246283009


def test_results_log_resumes_and_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    log = ResultsLog(path)
    log.append(_record(index=0))
    log.append(_record(index=1, success=False, error="worker crashed"))
    with open(path, "a") as f:
        f.write('{"task": "CoffeePressButton", "base_se')  # killed mid-write
    again = ResultsLog(path)
    assert again.is_done(EpisodeKey("CoffeePressButton", 0, 0))
    assert not again.is_done(EpisodeKey("CoffeePressButton", 0, 1))  # errored: retried on resume
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 2
    again.append(_record(index=1, success=True))
    assert ResultsLog(path).is_done(EpisodeKey("CoffeePressButton", 0, 1))


def test_results_log_rejects_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text("garbage\n" + json.dumps(_record().__dict__) + "\n")
    with pytest.raises(ValueError, match="episodes.jsonl:1: not an episode record"):
        ResultsLog(path)
