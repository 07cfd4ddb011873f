"""rollout.py's command line: flags map to the config, and bad input is one line naming the problem."""

import pytest

from rollouts.cli import main, parse_args


def test_flags_and_compare_pair_parse():
    config = parse_args(["--task", "TurnOffMicrowave", "--num-envs", "2", "--execute-steps", "4", "--video",
                         "--compare", "runs/a", "runs/b", "--seeds", "3"])
    assert (config.task, config.num_envs, config.execute_steps, config.video, config.seeds) == (
        "TurnOffMicrowave", 2, 4, True, 3)
    assert config.compare == ("runs/a", "runs/b")
    assert parse_args(["--compare", "runs/a,runs/b"]).compare == ("runs/a", "runs/b")
    assert parse_args(["--compare=runs/a", "runs/b"]).compare == ("runs/a", "runs/b")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--task", "TurnOffMicrowav"], "unknown task 'TurnOffMicrowav' (did you mean 'TurnOffMicrowave'?); valid: "),
        (["--task", "all", "--num-envs", "999"], "--num-envs 999 is more than 4x the"),
        (["--task", "CoffeePressButton", "--episodes", "2", "--num-envs", "3", "--policy", "expert"],
         "--num-envs 3 exceeds the 2 episodes to run"),
        (["--task", "all", "--checkpoint", "/nonexistent/ckpt"], "checkpoint /nonexistent/ckpt does not exist"),
        (["--task", "all", "--episodes", "many"], "--episodes expects int; got 'many'"),
        (["--task", "all", "--num-env", "2"], "unknown option --num_env (did you mean 'num_envs'?)"),
        (["--compare", "a", "--task", "all"], "--compare takes exactly two checkpoints"),
        (["--compare", "a", "b", "c", "--task", "all"], "--compare takes exactly two checkpoints (A B); got 3"),
        (["--task", "all", "--episodes", "5", "6"], "--episodes takes one value; got 2: 5 6"),
        (["--task", "all", "--policy", "robot"], "--policy must be one of vla, expert"),
        (["--task", "all", "--execute-steps", "0", "--checkpoint", "/nonexistent/ckpt"],
         "--execute-steps must be >= 1; got 0"),
    ],
)
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_directory_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "checkpoint-000001").mkdir()
    (tmp_path / "checkpoint-000001" / "config.json").write_text("{}")
    assert main(["--task", "all", "--checkpoint", str(tmp_path / "checkpoint-000001")]) == 2
    assert "is incomplete: missing model.safetensors, normalizer.json" in capsys.readouterr().err
