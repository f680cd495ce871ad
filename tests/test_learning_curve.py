"""The learning-curve projection: exact on curves it can represent, one-line errors otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hmrt.train.learning_curve import fit_power_law, main


def test_fits_recover_a_known_power_law_and_its_floor():
    steps = np.array([2e3, 4e3, 8e3, 16e3, 32e3])
    pure = 300.0 * steps**-0.15
    law = fit_power_law(steps, pure, with_floor=False)
    assert law.scale == pytest.approx(300.0, rel=1e-6) and law.exponent == pytest.approx(0.15)
    assert law.steps_for(float(300.0 * 64e3**-0.15)) == pytest.approx(64e3, rel=1e-6)
    floored = fit_power_law(steps, 40.0 + 900.0 * steps**-0.4, with_floor=True)
    assert floored.floor == pytest.approx(40.0, abs=0.5) and floored.rms < 0.05
    assert math.isinf(floored.steps_for(30.0))  # below the floor: never


def test_cli_reads_staged_eval_logs(tmp_path, capsys):
    header = "step,epoch,mpjpe,pa_mpjpe,pve\n"
    (tmp_path / "a.csv").write_text(
        header + "".join(f"{s},0,0,{200 * s**-0.1:.4f},0\n" for s in (1000, 2000, 3000, 4000))
    )
    (tmp_path / "b.csv").write_text(
        header + "".join(f"{s},0,0,{200 * (s + 4000) ** -0.1:.4f},0\n" for s in (1000, 2000))
    )
    logs = ["--log", str(tmp_path / "a.csv"), "--log", f"{tmp_path / 'b.csv'}@4000"]
    assert main([*logs, "--target", "80"]) == 0
    out = capsys.readouterr().out
    assert "5 points, steps 2000..6000" in out and "| b * s^-c | 0.0 | 200" in out
    assert main(["--log", str(tmp_path / "missing.csv"), "--target", "80"]) == 2
    assert "no such eval log" in capsys.readouterr().err
    assert main(["--log", f"{tmp_path / 'a.csv'}@x", "--target", "80"]) == 2
