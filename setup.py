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
        "clu>=0.0.12",
        "absl-py",
        "numpy",
        "scipy",
        "scikit-learn",
        "matplotlib",
        # clu's TensorBoard writer imports TensorFlow (clu does not declare it)
        "tensorflow-cpu",
        "tensorboard",
    ],
    extras_require={
        # The image-pipeline tests run the real tfds / grain code on mocked data.
        "test": ["pytest>=7", "pytest-xdist>=3", "tensorflow-datasets>=4.9", "grain"],
        "data": ["tensorflow-datasets>=4.9", "grain", "importlib_resources"],  # tfds build imports importlib_resources
        "tpu": ["jax[tpu]"],
    },
)
