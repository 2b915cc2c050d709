"""Ground-truth simulator: one seed gives one coherent world (genome, cells, reads, truth).

See ``docs/simulator.md`` for the generative model and every file written.
"""

from scregnet.simulate.api import simulate
from scregnet.simulate.presets import PRESETS

__all__ = ["PRESETS", "simulate"]
