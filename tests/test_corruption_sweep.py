"""The corruption sweep (scripts/corruption_sweep.py): each damaged input is refused by the command that reads it in
one line naming the file and the problem, with exit code 2, and nothing already written is changed."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "corruption_sweep.py"
spec = importlib.util.spec_from_file_location("corruption_sweep", SCRIPT)
sweep = sys.modules["corruption_sweep"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(sweep)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return sweep.make_inputs(tmp_path_factory.mktemp("sweep") / "inputs")


@pytest.mark.parametrize("case", sweep.CASES, ids=[c.damage.__name__ for c in sweep.CASES])
def test_damaged_input_is_one_line_exit_2_and_changes_nothing(case, inputs, tmp_path):
    row = sweep.run_case(case, inputs, tmp_path)
    print(sweep.table([row]).splitlines()[-1])  # the table row (pytest -s shows it)
    assert row.exit_code == 2, row.line
    assert row.line.startswith("error: ") and "\n" not in row.line and "Traceback" not in row.line, row.line
    for fragment in case.expect:
        assert fragment in row.line, (fragment, row.line)
    assert row.unchanged, "the failed command changed a file it was given"
