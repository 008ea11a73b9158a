"""The default experiment's targets are ones the tool can vouch for: at w* no geometry
warning (the localizer dominating, a w* off its minimum) applies to them. What the samplers
then report on them (R-hat, heating) is measured by running the experiment; the closing
notes and bench/results.md quote it."""

from __future__ import annotations

from isolated import run_isolated


def test_default_targets_give_no_geometry_warning(repo_root):
    found = run_isolated("geometry_warnings", "float64",
                         config_path=str(repo_root / "config" / "config.yaml"))
    assert set(found) == {"dln", "mlp"}
    assert found == {"dln": [], "mlp": []}
