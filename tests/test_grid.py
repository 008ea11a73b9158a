"""Experiment grids (`grid:`, `zip:`, `replicates:` on targets and samplers): expansion is
pure config; each point is an entry of its own with a stable name and recorded values."""

from __future__ import annotations

import pytest

from lambda_hat.config import Experiment
from lambda_hat.errors import ConfigError
from lambda_hat.grid import expand_grids
from lambda_hat.settings import as_dict

DLN = {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1}, "data": {"n": 500}, "seed": 4}


def experiment(target: dict, sampler: dict | None = None) -> Experiment:
    return Experiment({"targets": {"dln": target},
                       "samplers": {"hmc": sampler or {"kind": "hmc"}}}, "grid.yaml")


def test_a_product_grid_names_every_combination_and_sets_its_values():
    grid = experiment({**DLN, "grid": {"data.n": [500, 1000], "model.rank": [1, 2]}})
    assert grid.target_names == ["dln.n-500.rank-1", "dln.n-500.rank-2", "dln.n-1000.rank-1",
                                 "dln.n-1000.rank-2"]
    point = grid.target("dln.n-1000.rank-2")
    assert point["data"]["n"] == 1000 and point["model"]["rank"] == 2
    assert point["model"]["widths"] == [3, 2, 3] and point["seed"] == 4
    assert point["grid_of"] == "dln" and point["grid_point"] == {"data.n": 1000, "model.rank": 2}


def test_zip_pairs_values_and_combines_with_the_product():
    grid = experiment({**DLN, "zip": {"data.n": [500, 2000], "training.steps": [100, 400]},
                       "grid": {"model.rank": [1, 2]}})
    assert grid.target_names == ["dln.rank-1.n-500.steps-100", "dln.rank-1.n-2000.steps-400",
                                 "dln.rank-2.n-500.steps-100", "dln.rank-2.n-2000.steps-400"]
    assert grid.target("dln.rank-2.n-2000.steps-400")["training"]["steps"] == 400


def test_replicates_have_distinct_seeds_from_the_entry_seed():
    grid = experiment({**DLN, "grid": {"data.n": [500]}, "replicates": 3})
    names = grid.target_names
    assert names == [f"dln.n-500.rep-{r}" for r in range(3)]
    assert [grid.target(name)["seed"] for name in names] == [4, 5, 6]
    assert grid.target(names[2])["grid_point"] == {"data.n": 500, "replicate": 2}


def test_a_sampler_grid_with_replicates_and_lists_as_values():
    grid = experiment({**DLN, "grid": {"model.widths": [[3, 2, 3], [4, 2, 4]]}},
                      {"kind": "hmc", "grid": {"step_size_jitter": [0.0, 0.2]},
                       "replicates": 2})
    assert grid.target_names == ["dln.widths-3_2_3", "dln.widths-4_2_4"]
    assert grid.sampler_names == [f"hmc.step_size_jitter-{v}.rep-{r}"
                                  for v in ("0.0", "0.2") for r in (0, 1)]
    settings = grid.sampler("hmc.step_size_jitter-0.2.rep-1")
    assert (settings.step_size_jitter, settings.seed, settings.sweep_of) == (0.2, 1, "hmc")
    assert as_dict(settings)["grid_point"] == {"step_size_jitter": 0.2, "replicate": 1}


def test_labels_keep_the_whole_path_where_the_last_part_is_ambiguous():
    raw = {"targets": {"dln": {**DLN, "grid": {"data.x.scale": [1.0, 2.0],
                                                "data.noise.sigma": [0.1]}}},
           "samplers": {}}
    names = list(expand_grids(raw)["targets"])
    assert names == ["dln.scale-1.0.sigma-0.1", "dln.scale-2.0.sigma-0.1"]
    raw["targets"]["dln"]["grid"] = {"data.x.df": [3.0], "data.noise.df": [5.0]}
    assert list(expand_grids(raw)["targets"]) == ["dln.data.x.df-3.0.data.noise.df-5.0"]


@pytest.mark.parametrize("entry, message", [
    ({"grid": {"data.n": []}}, "targets.dln.grid.data.n: expected a non-empty list"),
    ({"grid": {"model.kind": ["mlp"]}}, "targets.dln.grid.model.kind: cannot be swept"),
    ({"zip": {"data.n": [1, 2], "seed": [1]}}, "targets.dln.zip: every list must have the "
                                               "same length"),
    ({"grid": {"seed": [1, 2]}, "replicates": 2}, "targets.dln.replicates: replicates set "
                                                  "the seed, which is also swept"),
    ({"grid": {"data.n": [10, 10]}}, "targets.dln.grid.data.n: repeated values"),
    ({"grid": {"data.n": [500]}, "zip": {"data.n": [1000]}}, "data.n is swept twice"),
    ({"grid": {"data.nn": [500]}}, "targets.dln.nn-500.data: unknown key(s) 'nn'"),
])
def test_bad_grids_are_named_with_the_file_and_key(entry, message):
    with pytest.raises(ConfigError) as info:
        experiment({**DLN, **entry})
    assert any(line.startswith("grid.yaml: ") and message in line
               for line in info.value.problems), info.value.problems
