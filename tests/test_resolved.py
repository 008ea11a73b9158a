"""A job's experiment is the planner's, resolved once: `Experiment.resolved` writes what one
job needs with a digest, and `Experiment.from_resolved` trusts it without checking it again,
but refuses a file changed after planning or written by another format or lambda-hat."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from lambda_hat import config as config_module
from lambda_hat.config import Experiment, read_yaml
from lambda_hat.errors import ConfigError
from lambda_hat.samplers.base import SamplerSettings

SOURCE = "config/smoke.yaml"


@pytest.fixture
def counted(monkeypatch):
    """Counts of schema validations and of sampler settings built, in this process."""
    counts = {"validations": 0, "typed": 0}
    iter_errors = jsonschema.Draft202012Validator.iter_errors
    make = config_module.make

    def counting_iter_errors(self, *args, **kwargs):
        counts["validations"] += 1
        return iter_errors(self, *args, **kwargs)

    def counting_make(cls, values):
        counts["typed"] += issubclass(cls, SamplerSettings)
        return make(cls, values)

    monkeypatch.setattr(jsonschema.Draft202012Validator, "iter_errors", counting_iter_errors)
    monkeypatch.setattr(config_module, "make", counting_make)
    return counts


def _round_trip(data: dict, tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    return path


def test_a_file_is_checked_in_one_pass_and_each_sampler_typed_once(repo_root, counted):
    experiment = Experiment.load(repo_root / SOURCE)
    assert counted == {"validations": 1, "typed": len(experiment.sampler_names)}


def test_a_resolved_job_is_trusted_and_gives_the_same_settings(repo_root, tmp_path, counted):
    planned = Experiment.load(repo_root / SOURCE)
    counted.update(validations=0, typed=0)
    path = _round_trip(planned.resolved("dln_small", "sgld"), tmp_path)
    job = Experiment.load(path)
    assert counted == {"validations": 0, "typed": 1}
    assert job.sampler("sgld") == planned.sampler("sgld")
    assert job.target("dln_small") == planned.target("dln_small")
    assert job.sampler_names == ["sgld"] and job.name == planned.name
    assert job.source == str(repo_root / SOURCE), "errors name the user's file, not the job's"


def test_a_build_job_has_its_target_and_no_sampler(repo_root, tmp_path):
    planned = Experiment.load(repo_root / SOURCE)
    job = Experiment.load(_round_trip(planned.resolved("dln_small"), tmp_path))
    assert job.sampler_names == [] and job.target_names == ["dln_small"]


@pytest.mark.parametrize("change, key", [
    (lambda data: data["samplers"]["sgld"].update(steps=7), "resolved.digest"),
    (lambda data: data["resolved"].update(format=0), "resolved"),
    (lambda data: data["resolved"].update(lambda_hat="0.0.0"), "resolved.lambda_hat"),
])
def test_a_changed_or_foreign_resolved_file_is_refused(repo_root, tmp_path, change, key):
    data = Experiment.load(repo_root / SOURCE).resolved("dln_small", "sgld")
    change(data)
    path = _round_trip(data, tmp_path)
    with pytest.raises(ConfigError) as info:
        Experiment.load(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: {key}: ") and "plan the run again" in problem
    assert read_yaml(path) == data, "the file is left as it was"
