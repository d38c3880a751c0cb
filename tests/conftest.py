"""Shared test settings: hypothesis profiles chosen by GRADSIM_HYPOTHESIS_PROFILE."""

import os

from hypothesis import HealthCheck, settings

# deadline=None: numba compiles on first call, which trips per-example deadlines.
settings.register_profile("dev", max_examples=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("GRADSIM_HYPOTHESIS_PROFILE", "dev"))
