"""Calibration sweeps: grid expansion (pure config) and the flat region of λ̂ along ε."""

from __future__ import annotations

import pytest

from lambda_hat.config import NAME_PATTERN, Experiment
from lambda_hat.errors import ConfigError
from lambda_hat.settings import as_dict
from lambda_hat.summary import write_summary
from lambda_hat.sweep import expand_sweeps, flat_region
from records import run_summary

RAW = {
    "targets": {"dln": {"model": {"kind": "dln", "widths": [3, 2], "rank": 1}}},
    "samplers": {
        "hmc": {"kind": "hmc"},
        "sgld": {"kind": "sgld", "steps": 4000,
                 "sweep": {"step_size": [1.0e-6, 3.0e-6, 1.0e-5], "gamma": [1.0, 10.0]}},
    },
}


def test_expansion_names_values_and_validity():
    expanded = expand_sweeps(RAW, "exp.yaml")
    names = list(expanded["samplers"])
    assert names[0] == "hmc" and len(names) == 1 + 6
    assert "sgld.step_size-1e-06.gamma-1.0" in names
    for name in names:
        assert NAME_PATTERN.match(name), name
    point = expanded["samplers"]["sgld.step_size-1e-05.gamma-10.0"]
    assert point == {"kind": "sgld", "steps": 4000, "step_size": 1.0e-5, "gamma": 10.0,
                     "sweep_of": "sgld", "grid_point": {"step_size": 1.0e-5, "gamma": 10.0}}
    assert "sweep" in RAW["samplers"]["sgld"]  # pure: the input is untouched
    experiment = Experiment(expanded, "exp.yaml")
    settings = experiment.sampler("sgld.step_size-3e-06.gamma-1.0")
    assert settings.step_size == 3.0e-6 and settings.sweep_of == "sgld"
    assert experiment.sampler("hmc").sweep_of is None


def test_no_sweep_is_the_identity():
    raw = {"targets": RAW["targets"], "samplers": {"hmc": {"kind": "hmc"}}}
    assert expand_sweeps(raw) is raw


@pytest.mark.parametrize("grid, message", [
    ({"step_size": "1e-5"}, "non-empty list"),
    ({"step_size": ["1e-5"]}, "write 1.0e-5"),
    ({"step_size": [-1.0e-5]}, "positive"),
    ({"step_size": [1.0e-5, 1.0e-5]}, "repeated"),
    ({"kind": ["sgld"]}, "cannot be swept"),
    ([1.0e-5], "mapping"),
])
def test_bad_grids_are_named(grid, message):
    raw = {"targets": RAW["targets"], "samplers": {"sgld": {"kind": "sgld", "sweep": grid}}}
    with pytest.raises(ConfigError) as info:
        expand_sweeps(raw, "exp.yaml")
    assert "exp.yaml: samplers.sgld.sweep" in str(info.value) and message in str(info.value)


def _summary(name, step, llc, mcse=0.2, gamma=1.0):
    return run_summary(sampler=name, llc_mean=llc, llc_mcse=mcse,
                       settings={"kind": "sgld", "step_size": step, "gamma": gamma,
                                 "sweep_of": "sgld"})


def test_flat_region_between_unmixed_and_biased_steps():
    # λ̂ rises while the chain has not mixed, plateaus, then rises with the step-size bias,
    # and the largest step diverged (no estimate).
    values = [(1e-7, 6.0), (3e-7, 9.8), (1e-6, 10.4), (3e-6, 10.6), (1e-5, 10.9),
              (3e-5, 15.0), (1e-4, None)]
    summaries = [_summary(f"p{i}", step, llc) for i, (step, llc) in enumerate(values)]
    result = flat_region(summaries)
    assert result["axis"] == "step_size"
    (group,) = result["groups"]
    assert group["flat"] == ["p1", "p2", "p3", "p4"]
    assert group["step"] == 1e-5 and group["llc"] == pytest.approx((9.8 + 10.4 + 10.6 + 10.9) / 4)
    assert [result["points"][f"p{i}"] for i in range(7)] == [False, True, True, True, True,
                                                            False, False]


def test_flat_region_per_gamma():
    summaries = [_summary(f"g1-{i}", s, v) for i, (s, v) in
                 enumerate([(1e-6, 10.0), (3e-6, 10.2), (1e-5, 14.0)])]
    summaries += [_summary(f"g10-{i}", s, v, gamma=10.0) for i, (s, v) in
                  enumerate([(1e-6, 4.0), (3e-6, 8.0), (1e-5, 8.3)])]
    result = flat_region(summaries)
    flats = {group["fixed"]["gamma"]: group["flat"] for group in result["groups"]}
    assert flats == {1.0: ["g1-0", "g1-1"], 10.0: ["g10-1", "g10-2"]}


def test_experiment_and_table_see_grid_points(tmp_path):
    """The configuration layer expands sweeps (so the workflow makes one job per point) and
    the aggregate table marks each point in or out of the flat region."""
    import pandas as pd

    from lambda_hat.aggregate import aggregate_runs
    from lambda_hat.config import Experiment

    raw = {"targets": {"t": {"model": {"kind": "dln", "widths": [2, 2], "rank": 1}}},
           "samplers": {"s": {"kind": "sgld", "sweep": {"step_size": [1.0e-5, 2.0e-5, 1.0e-3]}}}}
    experiment = Experiment(raw, "sweep.yaml")
    names = experiment.sampler_names
    assert names == ["s.step_size-1e-05", "s.step_size-2e-05", "s.step_size-0.001"]
    paths = []
    for name, llc in zip(names, (4.0, 4.1, 9.0)):
        summary = run_summary(sampler=name, llc_mean=llc, llc_mcse=0.05,
                              settings=as_dict(experiment.sampler(name)))
        paths.append(tmp_path / f"{name}.json")
        write_summary(paths[-1], summary)
    aggregate_runs(paths, tmp_path / "llc.parquet")
    table = pd.read_parquet(tmp_path / "llc.parquet")
    assert table["sweep_of"].tolist() == ["s"] * 3
    assert table["flat_region"].tolist() == [True, True, False]
