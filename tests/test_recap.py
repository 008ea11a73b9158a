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
    (tmp_path / "dln.log").write_text("INFO built dln\n")
    text = recap([("dln", "hmc", str(tmp_path / "a.json"), "logs/a.log",
                   str(tmp_path / "dln.log")),
                  ("mlp", "mclmc", str(tmp_path / "b.json"), "logs/b.log", "logs/mlp.log"),
                  ("mlp", "sgld", str(tmp_path / "c.json"), "logs/c.log", "logs/mlp.log")])
    lines = text.splitlines()
    assert lines[0] == "λ̂ of 2 of 3 runs:"
    assert lines[2].split() == ["dln", "hmc", "10.42", "±", "0.14", "10.5", "ok"]
    assert lines[3].split() == ["mlp", "mclmc", "7.37", "±", "0.042", "—", "warning"]
    assert "1 warning:" in lines
    assert "  mlp/mclmc: MCLMC energy variance 0.01 per dimension is 20× the target " \
           "(log: logs/b.log)" in lines
    assert lines[-2:] == ["1 run without a result:", "  mlp/sgld: no result (log: logs/c.log)"]
    assert "None" not in text and "nan" not in text


def test_runs_of_a_target_that_failed_to_build_show_its_error_and_log(tmp_path):
    """Its runs have no summary and no sample log (they never started), or a summary an
    earlier build left: either way the recap gives the build's last error line and its log,
    the file Snakemake's own message does not quote."""
    build_log = tmp_path / "logs" / "build" / "linear.log"
    build_log.parent.mkdir(parents=True)
    build_log.write_text(
        "INFO building linear\n"
        "lambda-hat build: error: targets.linear.model.entry: examples/bad.py: importing it "
        "raised ValueError: no model here; see docs\n")
    write_summary(tmp_path / "stale.json", run_summary(llc_mean=3.0))
    text = recap([("linear", "hmc", str(tmp_path / "missing.json"),
                   str(tmp_path / "logs" / "hmc.log"), str(build_log)),
                  ("linear", "sgld", str(tmp_path / "stale.json"),
                   str(tmp_path / "logs" / "sgld.log"), str(build_log))])
    lines = text.splitlines()
    assert lines[0] == "λ̂ of 0 of 2 runs:"
    error = ("targets.linear.model.entry: examples/bad.py: importing it raised ValueError: "
             "no model here; see docs")
    assert lines[-3:] == [
        "2 runs without a result:",
        f"  linear/hmc: the target did not build: {error} (log: {build_log})",
        f"  linear/sgld: the target did not build: {error} (log: {build_log})"]
