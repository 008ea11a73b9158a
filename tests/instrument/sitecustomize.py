"""Counts, per process, how often each sampler entry's settings are checked and typed.

Put this folder on PYTHONPATH with LAMBDA_HAT_COUNT_FILE=<path>: every Python process that
starts (Snakemake and each job's `lambda-hat`) appends one JSON line at exit,

    {"pid", "role", "schema": {sampler: n}, "check": {kind: n}, "typed": {kind: n},
     "snakemake_validate": {sampler: n}}

- `schema`: JSON-schema validations whose instance holds that sampler's entry (the whole
  experiment, or the entry itself);
- `check`: calls of the sampler module's `check` (checks between values);
- `typed`: sampler `Settings` dataclasses built from values;
- `snakemake_validate`: Snakemake's `validate(config, schema)` over the experiment.

Nothing is changed but counted; without LAMBDA_HAT_COUNT_FILE this file does nothing.
"""

import atexit
import collections
import json
import os
import sys

COUNT_FILE = os.environ.get("LAMBDA_HAT_COUNT_FILE")


def _role() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if program.startswith("snakemake") or "snakemake" in sys.argv[0].split(os.sep):
        return "snakemake"
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")
                    and not arg.isdigit()), "")
    return f"{program} {command}".strip()


def _sampler_names_in(instance) -> list[str]:
    if isinstance(instance, dict) and isinstance(instance.get("samplers"), dict):
        return [str(name) for name in instance["samplers"]]
    return []


def _entry_being_checked() -> str | None:
    """The sampler whose entry a validation belongs to, from a caller's `where` key path."""
    frame = sys._getframe(2)
    while frame is not None:
        where = frame.f_locals.get("where")
        if isinstance(where, (list, tuple)) and len(where) >= 2 and where[0] == "samplers":
            return str(where[1])
        frame = frame.f_back
    return None


def _called_by_snakemake() -> bool:
    """Whether Snakemake's own `validate(config, schema)` asks (counted by its wrapper)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.path.join("snakemake", "utils.py")):
            return True
        frame = frame.f_back
    return False


def _install() -> None:
    counts = {"schema": collections.Counter(), "check": collections.Counter(),
              "typed": collections.Counter(), "snakemake_validate": collections.Counter()}

    import jsonschema

    original_iter_errors = jsonschema.Draft202012Validator.iter_errors

    def iter_errors(self, instance, *args, **kwargs):
        names = _sampler_names_in(instance)
        entry = None if names else _entry_being_checked()
        if _called_by_snakemake():
            return original_iter_errors(self, instance, *args, **kwargs)
        for name in names or ([entry] if entry else []):
            counts["schema"][name] += 1
        return original_iter_errors(self, instance, *args, **kwargs)

    jsonschema.Draft202012Validator.iter_errors = iter_errors

    if _role() == "snakemake":
        import snakemake.utils

        original_validate = snakemake.utils.validate

        def validate(data, schema, *args, **kwargs):
            # Snakemake resolves `schema` against the caller's `workflow` global: lend it ours.
            globals()["workflow"] = sys._getframe(1).f_globals.get("workflow")
            for name in _sampler_names_in(data):
                counts["snakemake_validate"][name] += 1
            return original_validate(data, schema, *args, **kwargs)

        snakemake.utils.validate = validate

    import lambda_hat.settings as settings

    original_make = settings.make

    def make(cls, values):
        kind = getattr(cls, "kind", None)
        if isinstance(kind, str) and kind and hasattr(cls, "trace_points"):
            counts["typed"][kind] += 1
        return original_make(cls, values)

    settings.make = make

    from lambda_hat.samplers import REGISTRY

    def counting(kind, check):
        def wrapped(*args, **kwargs):
            counts["check"][kind] += 1
            return check(*args, **kwargs)
        return wrapped

    for kind, module in REGISTRY.items():
        if callable(getattr(module, "check", None)):
            module.check = counting(kind, module.check)

    def report() -> None:
        line = {"pid": os.getpid(), "role": _role(),
                **{key: dict(value) for key, value in counts.items()}}
        with open(COUNT_FILE, "a") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")

    atexit.register(report)


if COUNT_FILE:
    _install()
