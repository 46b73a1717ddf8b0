"""Hypothesis settings for the unit tests.

Under ``tests/mutation/run.py`` (which sets CUSTODY_MUTANT in every run it starts), the profile
``mutation`` is loaded: a mutant only has to be caught, not explained, so the failing example
is not shrunk (the slow part of a failure). Generation is exactly as in a normal run.
"""

from __future__ import annotations

import os

from hypothesis import Phase, settings

settings.register_profile(
    "mutation", phases=[p for p in Phase if p not in (Phase.shrink, Phase.explain)]
)
if os.environ.get("CUSTODY_MUTANT"):
    settings.load_profile("mutation")
