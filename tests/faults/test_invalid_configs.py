"""Bad experiment files are refused before any work, one message per problem, naming the
file and the key path; the CLI writes nothing."""

import copy

import pytest
import yaml

from lambda_hat.config import check_experiment
from support import run_cli, write_config

VALID = {
    "experiment": "faults",
    "posterior": {"beta": "auto", "gamma": 1.0},
    "targets": {"dln": {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1},
                        "data": {"n": 500}, "seed": 0}},
    "samplers": {"hmc": {"kind": "hmc"}, "sgld": {"kind": "sgld", "step_size": 1.0e-5}},
}


DELETE = object()


def edited(path, value):
    """VALID with the key at `path` (a tuple) set to `value`, or removed when value is DELETE."""
    config = copy.deepcopy(VALID)
    node = config
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return config

CASES = {
    "typo at top level": (
        edited(("sampler",), {}), "<top level>: unknown key(s) 'sampler'"),
    "typo in a sampler setting": (
        edited(("samplers", "sgld", "step_sise"), 1.0e-5),
        "samplers.sgld.step_sise: not a setting of a sgld sampler"),
    "YAML 1.1 float read as text": (
        edited(("samplers", "sgld", "step_size"), "1e-5"),
        "samplers.sgld.step_size: '1e-5' is text, expected a number or auto "
        "(YAML reads 1e-5 as text"),
    "negative step size": (
        edited(("samplers", "sgld", "step_size"), -0.1),
        "samplers.sgld.step_size: -0.1 is less than or equal to the minimum of 0"),
    "zero chains": (
        edited(("samplers", "hmc", "chains"), 0), "samplers.hmc.chains: 0 is less than the minimum of 1"),
    "unknown sampler kind": (
        edited(("samplers", "hmc", "kind"), "hcm"), "samplers.hmc.kind: unknown sampler kind 'hcm'"),
    "unknown dtype": (
        edited(("samplers", "hmc", "dtype"), "float16"), "samplers.hmc.dtype: 'float16' is not one of"),
    "rank above the smallest width": (
        edited(("targets", "dln", "model", "rank"), 3),
        "targets.dln.model.rank: rank 3 exceeds the smallest width 2"),
    "zero data points": (
        edited(("targets", "dln", "data", "n"), 0), "targets.dln.data.n: 0 is less than the minimum of 1"),
    "name that is not a path component": (
        {**VALID, "targets": {"a/b": VALID["targets"]["dln"]}},
        "targets.a/b: name must be letters, digits"),
    "two samplers writing the same path": (
        edited(("samplers", "HMC"), {"kind": "hmc"}),
        "samplers.HMC: writes the same path as sampler 'hmc'"),
    "batch larger than n without replacement": (
        edited(("samplers", "sgld"), {"kind": "sgld", "batch_size": 1000, "replacement": False}),
        "samplers.sgld.batch_size: batch 1000 > n = 500 of target 'dln' needs replacement: true"),
    "unknown model kind": (
        edited(("targets", "dln", "model", "kind"), "cnn"), "targets.dln.model.kind: 'cnn' is not one of"),
    "missing targets": (edited(("targets",), DELETE), "<top level>: 'targets' is a required property"),
    "mlp without in_dim": (
        {**VALID, "targets": {"m": {"model": {"kind": "mlp", "widths": [4], "out_dim": 1}}}},
        "targets.m.model.in_dim: required for a mlp model"),
    "dln key on an mlp": (
        {**VALID, "targets": {"m": {"model": {"kind": "mlp", "in_dim": 2, "widths": [4],
                                              "out_dim": 1, "rank": 1}}}},
        "targets.m.model.rank: not a key of a mlp model"),
    "negative beta": (
        edited(("posterior", "beta"), -1.0), "posterior.beta: -1.0 is not valid under any"),
    "a setting that is not one of its words": (
        edited(("samplers", "hmc", "adaptation"), "pooled"),
        "samplers.hmc.adaptation: 'pooled' is not one of per_chain, shared"),
    "a negative setting of a newly registered sampler": (
        edited(("samplers", "sgld"), {"kind": "sghmc", "alpha": -1.0}),
        "samplers.sgld.alpha: -1.0 is less than or equal to the minimum of 0"),
    "quadratic target without its dimension": (
        {**VALID, "targets": {"q": {"model": {"kind": "quadratic"}}}},
        "targets.q.model.d: required for a quadratic model"),
    "no localizer on a network target": (
        edited(("posterior", "gamma"), 0.0),
        "posterior.gamma: gamma = 0 leaves the posterior of target 'dln' (dln) improper"),
    "no localizer set on one sampler": (
        edited(("samplers", "hmc", "gamma"), 0),
        "samplers.hmc.gamma: gamma = 0 leaves the posterior of target 'dln' (dln) improper"),
    "misspelt loss option": (
        edited(("targets", "dln", "loss"), {"kind": "student_t", "dof": 3}),
        "targets.dln.loss: unknown key(s) 'dof'"),
    "unknown loss": (
        edited(("targets", "dln", "loss"), {"kind": "huber"}),
        "targets.dln.loss.kind: 'huber' is not one of mse, student_t"),
    "a loss on a target without one": (
        {**VALID, "targets": {"q": {"model": {"kind": "quadratic", "d": 2},
                                    "loss": {"kind": "student_t"}}}},
        "targets.q.loss: a quadratic target has no loss setting (only dln, mlp take one"),
    "misspelt nested model option": (
        {**VALID, "targets": {"m": {"model": {"kind": "mlp", "in_dim": 2, "widths": [4],
                                              "out_dim": 1, "init": {"kind": "he", "sacle": 2}}}}},
        "targets.m.model.init: unknown key(s) 'sacle'"),
    "misspelt data option": (
        edited(("targets", "dln", "data", "x"), {"kind": "mixture", "componets": 3}),
        "targets.dln.data.x: unknown key(s) 'componets'"),
    "checkpoints of a target that is not trained": (
        edited(("targets", "dln", "checkpoints"), [10]),
        "targets.dln.checkpoints: checkpoints are steps of training: set w_star: trained"),
    "checkpoint beyond the training": (
        {**VALID, "targets": {"m": {"model": {"kind": "mlp", "in_dim": 2, "widths": [4],
                                              "out_dim": 1},
                                    "training": {"steps": 100}, "checkpoints": [50, 200]}}},
        "targets.m.checkpoints: 200 is not a training step in 0..100 (training.steps)"),
    "checkpoints of a quadratic": (
        {**VALID, "targets": {"q": {"model": {"kind": "quadratic", "d": 2},
                                    "checkpoints": [1]}}},
        "targets.q.checkpoints: a quadratic target is not trained, so it has no checkpoints"),
    "a checkpoint listed twice": (
        edited(("targets", "dln", "checkpoints"), [10, 10]),
        "targets.dln.checkpoints: [10, 10] has non-unique elements"),
    "observing more points than the data has": (
        edited(("samplers", "hmc", "observe"), 501),
        "samplers.hmc.observe: 501 points asked but target 'dln' has n = 500"),
    "observing with VI": (
        edited(("samplers", "vi"), {"kind": "vi", "observe": 5}),
        "samplers.vi.observe: a vi run has no chain of draws to observe; use an MCMC sampler"),
    "observing a target without data points": (
        {**VALID, "targets": {"q": {"model": {"kind": "quadratic", "d": 2}}},
         "samplers": {"hmc": {"kind": "hmc", "observe": "data"}}},
        "samplers.hmc.observe: target 'q' is a quadratic target: it has no data points"),
    "observe neither a count nor data": (
        edited(("samplers", "hmc", "observe"), "all"),
        "samplers.hmc.observe: 'all' is text, expected a number or data"),
    "boolean as a number": (
        edited(("samplers", "hmc", "draws"), True), "samplers.hmc.draws: True is not of type 'integer'"),
}


def test_the_valid_config_is_valid():
    assert check_experiment(VALID, "valid.yaml") == []


def test_a_quadratic_target_needs_no_localizer():
    config = {**edited(("posterior", "gamma"), 0.0),
              "targets": {"q": {"model": {"kind": "quadratic", "d": 3}}}}
    assert check_experiment(config, "q.yaml") == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_problem_is_named(case):
    config, expected = CASES[case]
    problems = check_experiment(config, "exp.yaml")
    assert len(problems) == 1, problems
    assert problems[0].startswith("exp.yaml: ")
    assert expected in problems[0]


def test_every_problem_is_reported_at_once():
    config = edited(("samplers", "sgld", "step_size"), "1e-5")
    config["samplers"]["hmc"]["chains"] = 0
    problems = check_experiment(config, "exp.yaml")
    assert [p.split(": ")[1] for p in problems] == ["samplers.hmc.chains", "samplers.sgld.step_size"]


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("targets: {dln: [unclosed\n")
    done = run_cli("check", "--config", path, x64=False, threads=None)
    assert done.returncode != 0
    assert f"{path}: not valid YAML" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case", ["typo in a sampler setting", "rank above the smallest width",
                                  "YAML 1.1 float read as text"])
def test_cli_refuses_before_any_work(tmp_path, case):
    config, expected = CASES[case]
    path = write_config(tmp_path, config)
    out = tmp_path / "out"
    for command in (["build", "--config", path, "--target", "dln", "--out", out],
                    ["sample", "--config", path, "--target-dir", tmp_path / "t",
                     "--sampler", "sgld", "--out", out]):
        done = run_cli(*command, x64=True)
        assert done.returncode != 0
        assert f"{path}: " in done.stderr and expected in done.stderr
        assert "Traceback" not in done.stderr
        assert not out.exists()
    assert yaml.safe_load(path.read_text()) == config
