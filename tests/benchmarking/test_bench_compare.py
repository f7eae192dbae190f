"""datarax-bench compare: exit 0 without regression, 1 with one, 2 on unreadable input."""

from __future__ import annotations

import json

import pytest

from datarax.benchmarking.cli import main
from datarax.benchmarking.compare import compare


def _results(rates: dict[tuple[str, str], float | str]) -> dict:
    rows = []
    for (scenario, framework), rate in rates.items():
        if isinstance(rate, str):
            rows.append(
                {"scenario": scenario, "framework": framework, "status": rate, "reason": "crafted"}
            )
        else:
            rows.append(
                {
                    "scenario": scenario,
                    "framework": framework,
                    "status": "ok",
                    "reason": None,
                    "elements_per_s": {"median": rate, "min": rate * 0.9, "max": rate * 1.1},
                }
            )
    return {"schema": "datarax-bench/1", "results": rows}


OLD = _results(
    {
        ("W1", "datarax"): 1000.0,
        ("W1", "numpy"): 5000.0,
        ("W2", "datarax"): 300.0,
        ("W3", "grain"): 100.0,
        ("W4", "torch"): 50.0,
    }
)


def _write(tmp_path, name, results):
    path = tmp_path / name
    path.write_text(json.dumps(results))
    return str(path)


def test_no_regression_within_the_threshold_exits_0(tmp_path, capsys):
    new = _results(
        {
            ("W1", "datarax"): 950.0,
            ("W1", "numpy"): 5600.0,
            ("W2", "datarax"): 271.0,
            ("W3", "grain"): "skipped",
            ("W4", "torch"): 50.0,
        }
    )
    status = main(["compare", _write(tmp_path, "old.json", OLD), _write(tmp_path, "new.json", new)])
    out = capsys.readouterr().out
    assert status == 0
    assert "| W1 | numpy | 5.00 K | 5.60 K | +12.0% | faster |" in out
    assert "| W3 | grain | 100 | - | - | not compared |" in out
    assert out.rstrip().endswith("no regression beyond 10%")


def test_regressions_are_flagged_row_by_row_and_exit_1(tmp_path, capsys):
    new = _results(
        {
            ("W1", "datarax"): 899.0,
            ("W1", "numpy"): 5000.0,
            ("W2", "datarax"): 280.0,
            ("W3", "grain"): 100.0,
            ("W4", "torch"): "failed",
        }
    )
    flagged = [(c.scenario, c.framework, c.verdict) for c in compare(OLD, new, 0.10) if c.regressed]
    assert flagged == [("W1", "datarax", "regression"), ("W4", "torch", "failed")]
    status = main(["compare", _write(tmp_path, "old.json", OLD), _write(tmp_path, "new.json", new)])
    out = capsys.readouterr().out
    assert status == 1
    assert "| W1 | datarax | 1.00 K | 899 | -10.1% | regression |" in out
    assert "| W2 | datarax | 300 | 280 | -6.7% | ok |" in out
    assert out.rstrip().endswith("2 regression(s) beyond 10%: W1/datarax, W4/torch")


def test_the_threshold_is_an_option(tmp_path):
    new = _results({("W1", "datarax"): 899.0})
    old, path = _write(tmp_path, "old.json", OLD), _write(tmp_path, "new.json", new)
    assert main(["compare", old, path, "--threshold", "0.2"]) == 0
    assert main(["compare", old, path, "--threshold", "0.05"]) == 1


def test_unreadable_input_exits_2_naming_the_file_and_the_problem(tmp_path, capsys):
    old = _write(tmp_path, "old.json", OLD)
    missing = str(tmp_path / "absent.json")
    assert main(["compare", old, missing]) == 2
    assert f"{missing}: cannot read the file" in capsys.readouterr().err

    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": ')
    assert main(["compare", str(broken), old]) == 2
    err = capsys.readouterr().err
    assert f"{broken}: not valid JSON" in err and "line 1 column 12" in err

    foreign = _write(tmp_path, "foreign.json", {"results": []})
    assert main(["compare", old, foreign]) == 2
    assert "not a datarax-bench results file" in capsys.readouterr().err

    bad_row = dict(OLD, results=[{"scenario": "W1", "framework": "numpy", "status": "ok"}])
    assert main(["compare", old, _write(tmp_path, "bad.json", bad_row)]) == 2
    assert "results[0]: missing throughput figures" in capsys.readouterr().err


def test_a_binary_file_exits_2_naming_the_byte(tmp_path, capsys):
    old = _write(tmp_path, "old.json", OLD)
    binary = tmp_path / "results.json"
    binary.write_bytes(b'{"schema": "\xff\xfe"}')
    assert main(["compare", old, str(binary)]) == 2
    err = capsys.readouterr().err
    assert f"{binary}: not a text file; expected a UTF-8 JSON document, found byte b'\\xff'" in err


def test_a_nan_median_is_not_a_figure(tmp_path, capsys):
    old = _write(tmp_path, "old.json", OLD)
    rows = OLD["results"][:1]
    nan_row = dict(rows[0], elements_per_s={"median": float("nan"), "min": 1.0, "max": 2.0})
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(dict(OLD, results=[nan_row])))  # JSON's NaN
    assert main(["compare", old, str(path)]) == 2
    assert "results[0]: missing throughput figures" in capsys.readouterr().err


@pytest.mark.parametrize("threshold", ["nan", "inf", "-0.1", "1.5", "ten"])
def test_the_threshold_is_a_finite_fraction(tmp_path, capsys, threshold):
    old = _write(tmp_path, "old.json", OLD)
    assert main(["compare", old, old, "--threshold", threshold]) == 2
    assert f"expected a fraction in [0, 1), found '{threshold}'" in capsys.readouterr().err
