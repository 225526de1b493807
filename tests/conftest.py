"""Tests run on CPU with 4 forced host devices, so the pmap paths are exercised."""

import os
import tempfile

# Compiles dominate the suite: LLVM's -O0 about halves the compile of a small UNet step, for slower
# execution, which the few long-running tests barely feel. Numerics are XLA's either way.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# main.py's persistent compilation cache: one per test session, shared by its subprocess runs, never the user's.
os.environ.setdefault("FLOWJAX_COMPILATION_CACHE", tempfile.mkdtemp(prefix="flowjax-test-jax-cache-"))
# The same cache for the tests' own programs: a resumed run's or a second setup's step is the program compiled before.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["FLOWJAX_COMPILATION_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


import pytest  # noqa: E402


@pytest.fixture
def mock_tfds():
    """TFDS's own mock data (`images.mock_tfds`: 12 examples generated from the builder's features, no files)."""
    from flowjax.data import images

    with images.mock_tfds():
        yield
