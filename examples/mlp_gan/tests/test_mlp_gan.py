"""The example plugin's own tests: ganzoo's conformance kit, one test item per guarantee the engine makes.

Run with the plugin installed (`pip install ./examples/mlp_gan`): `python -m pytest examples/mlp_gan/tests`.
"""

from __future__ import annotations

from ganzoo.testing import conformance_tests

# Tiny networks and the embedded digits: every check trains for a few iterations on the CPU.
test_conformance = conformance_tests("mlp-gan", data="mnist-4k?n=256", config={"hidden": 16, "latent_dim": 8})
