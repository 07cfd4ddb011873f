from dataclasses import dataclass, field

import pytest

from contract.cli import ConfigError, apply_overrides, describe, parse_config_or_exit, parse_overrides


@dataclass(frozen=True)
class Head:
    num_layers: int = 2
    dropout: float = 0.1


@dataclass(frozen=True)
class Run:
    steps: int = 10
    name: str = "run"
    cameras: tuple[str, ...] = ("left", "right")
    bf16: bool = False
    resume: str | None = None
    head: Head = field(default_factory=Head)


def test_flags_set_nested_fields_by_type():
    overrides = parse_overrides(["--steps", "5", "--head.num-layers=4", "--bf16", "--cameras", "left,wrist"])
    run = apply_overrides(Run(), overrides)
    assert run == Run(steps=5, bf16=True, cameras=("left", "wrist"), head=Head(num_layers=4))


def test_none_and_unchanged_fields():
    run = apply_overrides(Run(resume="x"), parse_overrides(["--resume", "none"]))
    assert run.resume is None and run.head == Head()


def test_unknown_flag_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown option --stesp \(did you mean 'steps'\?\)"):
        apply_overrides(Run(), parse_overrides(["--stesp", "3"]))


def test_a_tuple_field_takes_several_values_or_one_comma_separated():
    spaced = apply_overrides(Run(), parse_overrides(["--cameras", "left", "wrist", "--steps", "5"]))
    assert spaced == Run(steps=5, cameras=("left", "wrist"))
    assert apply_overrides(Run(), parse_overrides(["--cameras", "left,wrist"])).cameras == ("left", "wrist")
    assert apply_overrides(Run(), parse_overrides(["--cameras=left", "wrist"])).cameras == ("left", "wrist")
    assert apply_overrides(Run(), parse_overrides(["--cameras", "a,b.png", "c"])).cameras == ("a,b.png", "c")


def test_several_values_for_a_one_value_field_is_one_line():
    with pytest.raises(ConfigError, match="^--steps takes one value; got 2: 5 6$"):
        apply_overrides(Run(), parse_overrides(["--steps", "5", "6"]))
    with pytest.raises(ConfigError, match="^--resume takes one value; got 2: a b$"):
        apply_overrides(Run(), parse_overrides(["--resume", "a", "b"]))


def test_bad_value_names_the_flag_and_type():
    with pytest.raises(ConfigError, match="--steps expects int; got 'many'"):
        apply_overrides(Run(), parse_overrides(["--steps", "many"]))


def test_describe_lists_every_flag():
    text = describe(Run())
    assert "--head.num-layers 2" in text and "--resume None" in text


def test_scripts_exit_with_one_line_on_a_bad_flag(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config_or_exit(Run(), ["--stpes", "3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown option --stpes (did you mean 'steps'?)"


@dataclass(frozen=True)
class Checked:
    steps: int = 10

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")


def test_a_configs_own_check_is_one_line_too(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config_or_exit(Checked(), ["--steps", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --steps must be >= 1, got 0"
