"""The ground floor: the contract, look-up, CLI and file helpers import neither torch nor the model, nor does `envs`."""

import subprocess
import sys

import pytest

from contract.lookup import check_name, lookup

SCRIPT = """
import sys
import contract, contract.embodiments, contract.lookup, contract.cli, contract.files
import envs, envs.gym_env
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "vla"))
print("heavy:", heavy[:5])
"""


def test_envs_and_the_contract_import_without_torch_or_the_model():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "heavy: []" in done.stdout, done.stdout


def test_an_unknown_name_is_one_line_with_the_closest_and_the_valid_ones():
    tasks = {"TurnOffMicrowave": 1, "CoffeePressButton": 2}
    assert lookup(tasks, "CoffeePressButton", "task") == 2
    with pytest.raises(ValueError, match=r"^unknown task 'TurnOfMicrowave' \(did you mean 'TurnOffMicrowave'\?\); "
                                         r"valid: TurnOffMicrowave, CoffeePressButton$"):
        lookup(tasks, "TurnOfMicrowave", "task")
    assert check_name("wrist", ("left", "wrist"), "camera") == "wrist"
    with pytest.raises(ValueError, match=r"^unknown camera 'top'; valid: left, wrist$"):
        check_name("top", ("left", "wrist"), "camera")
