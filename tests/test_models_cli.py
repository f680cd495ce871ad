"""``hmrt model list`` and ``hmrt model info`` through the real CLI dispatcher."""

from __future__ import annotations

import json

from model_helpers import one_torch_thread, tiny_body_path  # noqa: F401

from hmrt.cli import main


def test_model_list(capsys):
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "danet" in out and "paper, edge" in out


def test_model_info_json_for_the_edge_variant(capsys):
    code = main(["model", "info", "danet", "--variant", "edge", "--body", str(tiny_body_path()),
                 "--set", "roi_size=16", "--json"])  # fmt: skip
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == [224, 224] and info["config"]["roi_size"] == 16
    assert 0 < info["params_inference"] < info["params_total"]
    assert 0.1 < info["gflops"] < 0.6
    assert info["fp32_modules"]["img2iuv.soft_argmax"] == "SoftArgmax2d"
    assert "regressor.coord_regressors" in info["train_only_modules"]


def test_model_info_text_and_errors(capsys):
    assert (
        main(["model", "info", "danet", "--variant", "edge", "--body", str(tiny_body_path())]) == 0
    )
    out = capsys.readouterr().out
    assert "used at inference" in out and "GFLOPs" in out and "body" in out
    assert main(["model", "info", "nope"]) == 2
    err = capsys.readouterr().err
    assert "known models:" in err and "danet" in err and "bobw" in err
    assert main(["model", "info", "danet", "--set", "roi_sise=3"]) == 2
    assert main(["model"]) == 2
