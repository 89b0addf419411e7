"""Criterion constants that several items (and the report's summary) share: one definition each,
so that every check and every sentence that states it use the same number."""

# A reported resolution R is called optimistic when R < OVERESTIMATE_FACTOR × an estimate
# (the reference's rule: 1.a per estimate, 1.b, and the summary against their mean).
OVERESTIMATE_FACTOR = 0.8

# Acceptable B-factor (Å², the reference's sign: negative for decaying amplitudes), for the
# global Guinier fit (0.d) and the median local B-factor (0.f).
B_MIN_A2, B_MAX_A2 = -300.0, 0.0

# The sentence of an optimistic reported resolution (1.a per estimate, 1.b).
WARN_OVERESTIMATED = ("The reported resolution, {r:.2f} Å, is much better than the resolution "
                      "estimated by the {method}, {est:.2f} Å: it should not be below "
                      "{factor:g} × {est:.2f} = {limit:.2f} Å.")
