"""The end-of-run recap: every run's λ̂, every warning with its log, and the runs that have
no result."""

from lambda_hat.recap import recap
from lambda_hat.summary import write_summary
from records import run_summary


def test_recap_lists_estimates_warnings_and_missing_runs(tmp_path):
    write_summary(tmp_path / "a.json", run_summary(llc_mean=10.4229, llc_mcse=0.1411,
                                                   true_llc=10.5))
    write_summary(tmp_path / "b.json", run_summary(
        llc_mean=7.37, llc_mcse=0.042, status="warning",
        warnings=("MCLMC energy variance 0.01 per dimension is 20× the target",)))
    text = recap([("dln", "hmc", str(tmp_path / "a.json"), "logs/a.log"),
                  ("mlp", "mclmc", str(tmp_path / "b.json"), "logs/b.log"),
                  ("mlp", "sgld", str(tmp_path / "c.json"), "logs/c.log")])
    lines = text.splitlines()
    assert lines[0] == "λ̂ of 2 of 3 runs:"
    assert lines[2].split() == ["dln", "hmc", "10.42", "±", "0.14", "10.5", "ok"]
    assert lines[3].split() == ["mlp", "mclmc", "7.37", "±", "0.042", "—", "warning"]
    assert "1 warning:" in lines
    assert "  mlp/mclmc: MCLMC energy variance 0.01 per dimension is 20× the target " \
           "(log: logs/b.log)" in lines
    assert lines[-2:] == ["1 run without a result:", "  mlp/sgld: no result (log: logs/c.log)"]
    assert "None" not in text and "nan" not in text
