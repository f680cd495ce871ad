"""``hmrt zoo`` / ``bench/bench_zoo.py``: rows from the registry, cells, caching, the table.

Fast: the row list, the deployment-form detection on the edge models, cheap cells measured then
served from the cache, unknown rows refused, and the markdown rendering. The measured columns
(export, parity, latency, FP16, accuracy) run in ``bench/bench_zoo.py`` itself (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse

import pytest

from hmrt.assets import asset_path
from hmrt.commands import zoo
from hmrt.runtime.errors import InputError

pytestmark = pytest.mark.skipif(
    not asset_path("body/hmrt_body.npz").is_file(), reason="bundled body model not built yet"
)


def zoo_args(tmp_path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    zoo.add_arguments(parser)
    args = parser.parse_args(["--cache", str(tmp_path / "cache.json")])
    for key, value in kw.items():
        setattr(args, key, value)
    return args


def test_rows_cover_every_registered_variant():
    rows = zoo.registered_rows()
    for row in [("danet", "paper"), ("danet", "edge"), ("decomr", "paper"), ("decomr", "edge")]:
        assert row in rows
    assert zoo.bundled_weights("danet", "edge") is not None
    assert zoo.bundled_weights("decomr", "paper") is None


def test_forms_name_the_export_flags(tmp_path):
    danet = zoo.Row("danet", "edge", zoo_args(tmp_path))
    decomr = zoo.Row("decomr", "edge", zoo_args(tmp_path))
    assert zoo.deployment_forms(danet.model) == "roi-pool grid|gather|matmul"
    assert zoo.deployment_forms(decomr.model) == "uv-scatter add|matmul; uv-sample gather|grid"


def test_cells_are_cached_and_rendered(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "QUICK_COLUMNS", ("params", "forms", "int8"))
    args = zoo_args(tmp_path, rows=["decomr:edge", "danet:edge"], quick=True)
    logged: list[str] = []
    cache, rows = zoo.measure(args, logged.append)
    assert len(logged) == 6 and args.cache.is_file()
    again: list[str] = []
    assert zoo.measure(args, again.append)[0] == cache and again == []  # all from the cache
    text = zoo.render(cache, rows, "# machine: test")
    table = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    lines = {f"{cells[0]} | {cells[1]}": " | ".join(cells) for cells in table}
    edge = lines["| decomr | edge"]
    assert "1.08 M" in edge and "uv-scatter add\\|matmul" in edge
    # both have bundled weights: int8 points to the precision report; the rest not measured here
    assert zoo.INT8_DOC in edge and "not run" in edge
    assert zoo.INT8_DOC in lines["| danet | edge"]
    assert "| danet | paper |" in text and text.startswith("# machine: test")


def test_unknown_rows_are_refused(tmp_path):
    with pytest.raises(InputError, match="hemlets:tiny: not registered; known: "):
        zoo.measure(zoo_args(tmp_path, rows=["hemlets:tiny"]), print)
