# Shared helpers, included before the rules: the checked experiment, file layout, job configs.
#
# Every job receives canonical text (sorted keys, defaults resolved, with a digest) of exactly
# the part of the experiment it depends on, and hands that text to the CLI as its experiment
# file, so a job never reads a config file edited after Snakemake planned it, and its process
# trusts what was checked here instead of checking it again (`Experiment.from_resolved`).
# The text is YAML, not JSON: the CLI reads YAML 1.1, which takes JSON's 2e-05 for a string.
#
# What triggers a rerun is the same part of the experiment, one param per setting
# (`sampler.step_size=1e-05`; a run's are its sampler's, since its target is an input):
# Snakemake compares params as a set of values, so its rerun reason then names the settings
# that changed. The text itself is not a str (`JobText`), so Snakemake does not record it as
# a param.

import functools
import json
import sys
import re

import yaml

from lambda_hat.config import Experiment
from lambda_hat.errors import ConfigError
from lambda_hat.grid import NAME_PATTERN
from lambda_hat.settings import as_dict
from lambda_hat.targets import CHECKPOINT_MARK


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
        print("the experiment is not valid (nothing was run):\n  " + "\n  ".join(exc.problems),
              file=sys.stderr)
        sys.exit(1)


SAMPLER_NAME = NAME_PATTERN.pattern.strip("^$")
TARGET_NAME = f"{SAMPLER_NAME}(?:{re.escape(CHECKPOINT_MARK)}[^/]+)?"
"""What a checked name can be in a path (a target's may carry a checkpoint's, whose name is
the target code's). Patterns, not the lists of names, which would make every path match
scan them all; a name the experiment lacks is refused when its job's settings are read."""


# File layout: names from the experiment are the wildcards.
TARGET_DIR = "results/{experiment}/targets/{target}"
RUN_DIR = "results/{experiment}/runs/{target}/{sampler}"
PLOT_DIR = "results/{experiment}/plots"
SAMPLE_LOG = "logs/{experiment}/sample/{target}/{sampler}.log"
BUILD_LOG = "logs/{experiment}/build/{target}.log"

def x64_flag(dtype):
    return "1" if dtype == "float64" else "0"


def canonical_yaml(experiment):
    """Key-order independent text (Snakemake compares params by repr); libyaml's emitter
    where PyYAML has it (the pure-Python one costs seconds when planning a large grid)."""
    return yaml.dump(experiment, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=True, default_flow_style=False, width=2**30)


class JobText:
    """A job's experiment text for its shell command, invisible to Snakemake's params
    record (it records builtin values only)."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


ABSENT = object()
"""A setting the job does not have: not a builtin value, so not recorded either."""


def flatten(tree, prefix):
    """{"a.b": value} for every leaf of nested dicts."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}"))
    return flat


@functools.lru_cache(maxsize=None)
def settings_of(section, name):
    """The flattened settings of target or sampler `name`, once per entry (each param of
    each of its jobs asks): `target.<key>` of its resolved config, or `sampler.<key>` of its
    resolved settings (posterior beta and gamma included)."""
    if section == "target":
        return flatten(EXPERIMENT.target(name), "target")
    return flatten(as_dict(EXPERIMENT.sampler(name)), "sampler")


def setting_params(section):
    """One param per setting of the `section` ("target" or "sampler") entries, each
    `key=value` (canonical JSON). A run's params are its sampler's alone: a change to its
    target rebuilds the target, whose new files rerun the run."""
    names = EXPERIMENT.target_names if section == "target" else EXPERIMENT.sampler_names
    keys = {key for name in names for key in settings_of(section, name)}

    def param(key):
        def value(wildcards):
            settings = settings_of(section, getattr(wildcards, section))
            if key not in settings:
                return ABSENT
            return f"{key}={json.dumps(settings[key], sort_keys=True)}"

        return value

    return {f"setting_{index}": param(key) for index, key in enumerate(sorted(keys))}


def build_config(wildcards):
    """The experiment file of a build job: its target, resolved (`Experiment.resolved`)."""
    return JobText(canonical_yaml(EXPERIMENT.resolved(wildcards.target)))


def sample_config(wildcards):
    """The experiment file of a run: its target's config (whose artifacts are also an
    input) and its sampler's settings, resolved (`Experiment.resolved`)."""
    return JobText(canonical_yaml(EXPERIMENT.resolved(wildcards.target, wildcards.sampler)))


def target_sources(wildcards):
    """Files a target is made from (a `python` target's file): an edit rebuilds it."""
    from lambda_hat.targets import REGISTRY, model_of

    model = EXPERIMENT.target(wildcards.target)["model"]
    return [str(path) for path in REGISTRY[model["kind"]].sources(model_of(model))]


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


def sampling_was_planned():
    """Whether this invocation planned a `sample` job (finished, failed, or held back by a
    failed build). Snakemake's DAG of this run knows; file times would not tell a job that
    failed, and a cluster's clocks may disagree with this one."""
    return any(job.rule.name == "sample"
               for job in workflow.dag.needrun_jobs(exclude_finished=False))


def print_recap():
    """λ̂ of every run and every warning with its log, at the end of a run (or a failure)
    that sampled: `snakemake gallery`, a replotted summary or a no-op run say nothing new
    about the estimates."""
    from lambda_hat.recap import recap

    if not sampling_was_planned():
        return
    names = [dict(experiment=EXPERIMENT.name, target=target, sampler=sampler)
             for target in EXPERIMENT.target_names for sampler in EXPERIMENT.sampler_names]
    runs = [(run["target"], run["sampler"], f"{RUN_DIR}/summary.json".format(**run),
             SAMPLE_LOG.format(**run), BUILD_LOG.format(**run)) for run in names]
    print(recap(runs), file=sys.stderr)


def summaries(wildcards):
    return run_files("summary.json", wildcards.experiment)


def has_checkpoints():
    return EXPERIMENT.target_names != EXPERIMENT.declared_targets


def declared_target_arrays(wildcards):
    """Each declared target's arrays (their training curves)."""
    return expand(f"{TARGET_DIR}/target.npz", experiment=wildcards.experiment,
                  target=EXPERIMENT.declared_targets)


def figures(wildcards):
    """Every figure of the experiment (what the gallery copies)."""
    return [path for path in final_outputs() if path.endswith(".png")]


def final_outputs():
    """The default target (`all`): the table, its HTML view, and every plot (each target's
    and each run's)."""
    name = EXPERIMENT.name
    return [
        f"results/{name}/llc.parquet",
        f"results/{name}/llc.html",
        f"results/{name}/plots/summary.png",
        *expand(f"{PLOT_DIR}/targets/{{target}}.png", experiment=name,
                target=EXPERIMENT.declared_targets),
        *([f"results/{name}/plots/checkpoints.png"] if has_checkpoints() else []),
        *([f"results/{name}/plots/grid.png"] if EXPERIMENT.has_grid else []),
        *expand(
            f"{PLOT_DIR}/runs/{{target}}/{{sampler}}.png",
            experiment=name,
            target=EXPERIMENT.target_names,
            sampler=EXPERIMENT.sampler_names,
        ),
        *(run_files("trace.nc") if EXPERIMENT.arviz_export else []),
    ]
