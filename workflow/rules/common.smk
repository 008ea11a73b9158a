# Shared helpers, included before the rules: the checked experiment, file layout, job configs.
#
# Every job receives, as a parameter, canonical text (sorted keys, defaults resolved) of
# exactly the part of the experiment it depends on, and hands that same text to the CLI as
# its experiment file. So Snakemake's params trigger reruns precisely when what a job depends
# on changes, and a job never reads a config file edited after Snakemake planned it.
# The text is YAML, not JSON: the CLI reads YAML 1.1, which takes JSON's 2e-05 for a string.

import math
import re

import yaml
from snakemake.exceptions import WorkflowError

from lambda_hat.config import Experiment
from lambda_hat.errors import ConfigError
from lambda_hat.settings import as_dict


def experiment_source():
    """How error messages name the experiment: the file(s) it came from."""
    files = workflow.overwrite_configfiles or ["config/config.yaml"]
    return ", ".join(map(str, files))


def load_experiment(config):
    """The checked experiment, with every sampler's settings resolved once; or stop before
    any job starts, listing every problem in it, one per line."""
    try:
        return Experiment(config, experiment_source())
    except ConfigError as exc:
        raise WorkflowError(
            "the experiment is not valid (nothing was run):\n  " + "\n  ".join(exc.problems)
        ) from None


def one_of(names):
    """A wildcard constraint matching exactly these names (or nothing)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


# File layout: names from the experiment are the wildcards.
TARGET_DIR = "results/{experiment}/targets/{target}"
RUN_DIR = "results/{experiment}/runs/{target}/{sampler}"
PLOT_DIR = "results/{experiment}/plots"

def x64_flag(dtype):
    return "1" if dtype == "float64" else "0"


def canonical_yaml(experiment):
    """Key-order independent text (Snakemake compares params by repr)."""
    return yaml.safe_dump(experiment, sort_keys=True, default_flow_style=False, width=math.inf)


def build_config(wildcards):
    """What a target depends on: its resolved config and the experiment name."""
    return canonical_yaml(
        {"experiment": EXPERIMENT.name,
         "targets": {wildcards.target: EXPERIMENT.target(wildcards.target)},
         "samplers": {}}
    )


def sample_config(wildcards):
    """What a run depends on: the resolved sampler settings (posterior beta and gamma
    included) and its target's config (whose artifacts are also an input)."""
    return canonical_yaml(
        {"experiment": EXPERIMENT.name,
         "targets": {wildcards.target: EXPERIMENT.target(wildcards.target)},
         "samplers": {wildcards.sampler: as_dict(EXPERIMENT.sampler(wildcards.sampler))}}
    )


def target_x64(wildcards):
    return x64_flag(EXPERIMENT.target(wildcards.target)["dtype"])


def sampler_x64(wildcards):
    return x64_flag(EXPERIMENT.sampler(wildcards.sampler).dtype)


def run_files(name, experiment=None):
    """`name` in every run directory, targets × samplers in the experiment's order."""
    return expand(
        f"{RUN_DIR}/{name}",
        experiment=experiment or EXPERIMENT.name,
        target=EXPERIMENT.target_names,
        sampler=EXPERIMENT.sampler_names,
    )


def summaries(wildcards):
    return run_files("summary.json", wildcards.experiment)


def final_outputs():
    """The default target (`all`): the table, its HTML view, and every plot."""
    name = EXPERIMENT.name
    return [
        f"results/{name}/llc.parquet",
        f"results/{name}/llc.html",
        f"results/{name}/plots/summary.png",
        *expand(
            f"{PLOT_DIR}/runs/{{target}}/{{sampler}}.png",
            experiment=name,
            target=EXPERIMENT.target_names,
            sampler=EXPERIMENT.sampler_names,
        ),
    ]
