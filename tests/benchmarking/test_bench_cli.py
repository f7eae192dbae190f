"""datarax-bench run, end to end on the hidden smoke profile: JSON, Markdown and PNGs."""

from __future__ import annotations

import importlib.util
import json

import pytest

from datarax.benchmarking.cli import main

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
PEERS = [
    name
    for name, module in (("grain", "grain"), ("torch", "torch"), ("tfdata", "tensorflow"),
                         ("hf", "datasets"))
    if importlib.util.find_spec(module) is not None
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    docs = out / "page.md"
    docs.write_text(
        "# Page\n\n<!-- datarax-bench:start -->\nSTALE TABLE\n<!-- datarax-bench:end -->\n"
    )
    status = main(
        ["run", "--platform", "cpu", "--profile", "smoke", "--repetitions", "1",
         "--frameworks", "numpy", "jax", "datarax", *PEERS,
         "--scenarios", "W1", "W4", "--output", str(out), "--docs", str(docs), "--no-progress"]
    )  # fmt: skip
    assert status == 0
    return out


def test_the_json_has_every_field_with_its_type(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema"] == "datarax-bench/1"
    assert isinstance(results["tool_version"], str) and isinstance(results["datarax_version"], str)
    assert results["profile"] == "smoke" and results["platform"] == "cpu"
    assert results["repetitions"] == 1 and isinstance(results["wall_s"], float)
    machine = results["machine"]
    assert isinstance(machine["cpu_count"], int) and machine["jax_backend"] == "cpu"
    assert isinstance(machine["python"], str) and isinstance(machine["jax_devices"], list)
    for name in ("numpy", "jax", "datarax", *PEERS):
        info = results["frameworks"][name]
        assert isinstance(info["version"], str) and info["available"] is True
    assert list(results["scenarios"]) == ["W1", "W4"]
    assert results["scenarios"]["W1"] == {
        "title": results["scenarios"]["W1"]["title"],
        "records": 128,
        "batch_size": 32,
        "epochs_per_pass": 2,
        "shuffle": False,
        "elements_per_pass": 256,
    }
    rows = {(r["scenario"], r["framework"]): r for r in results["results"]}
    expected = {("W1", s) for s in ("numpy", "jax", "datarax", *PEERS)}
    expected |= {("W4", s) for s in ("numpy", "numpy-loop", "jax", "datarax", *PEERS)}
    assert set(rows) == expected
    for key, row in rows.items():
        assert row["status"] == "ok", (key, row.get("reason"))
        assert row["reason"] is None
        rate = row["elements_per_s"]
        assert set(rate) == {"median", "min", "max"}
        assert all(isinstance(v, float) for v in rate.values())
        assert 0 < rate["min"] <= rate["median"] <= rate["max"]
        assert isinstance(row["ttfb_s"], float) and row["ttfb_s"] > 0
        assert isinstance(row["peak_rss_mib"], float) and row["peak_rss_mib"] > 50
        assert isinstance(row["cpu_percent"], float) and row["cpu_percent"] >= 0
        assert row["elements_per_pass"] == (256 if key[0] == "W1" else 512)


def test_the_markdown_has_one_row_per_scenario_and_the_ratios(run_dir):
    table = (run_dir / "results.md").read_text()
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| scenario | numpy |"))
    assert header.endswith("| datarax / best peer | datarax / best reference |")
    w1 = next(line for line in lines if line.startswith("| W1 | "))
    cells = [c.strip() for c in w1.strip("|").split("|")]
    assert len(cells) == len(header.strip("|").split("|"))
    assert cells[-1].endswith(("(numpy)", "(jax)"))
    if PEERS:
        assert cells[-2].split("(")[1].rstrip(")") in PEERS
    # One summary row, then one details row per system that ran W4.
    assert sum(line.startswith("| W4 | ") for line in lines) == 1 + 4 + len(PEERS)


def test_the_charts_are_png_files(run_dir):
    for name in ("throughput.png", "ratio.png"):
        data = (run_dir / name).read_bytes()
        assert data[:8] == PNG_HEADER and len(data) > 10_000


def test_the_docs_page_gets_the_generated_table(run_dir):
    page = (run_dir / "page.md").read_text()
    assert page.startswith("# Page\n\n<!-- datarax-bench:start -->\nProfile `smoke`")
    assert "\n| W4 | " in page and "STALE TABLE" not in page
    assert page.endswith("<!-- datarax-bench:end -->\n")
    assert main(["report", str(run_dir / "results.json"), "--docs", str(run_dir / "page.md")]) == 0
    assert (run_dir / "page.md").read_text() == page  # regenerated identically
