"""One process of the multi-process tests (tests/test_multiprocess.py), started as a subprocess:

    python tests/mp_worker.py SPEC_JSON

SPEC_JSON: {"devices": local CPU devices, "config": "configs/<name>.py", "overrides": {"training.num_steps": 40,
...}, "workdir": ..., "out": file prefix, "coordinator": "localhost:port" or null, "num_processes", "process_id",
"die_after": a step at which this process ends (os._exit, like a lost host; a few seconds after the
previous call, so that a checkpoint saved then is complete) or null}.

Trains with `flowjax.train.train` and writes ``<out>.<process_id>.npz``: the final parameters and coupling state
(flattened), and the loss logged at every log step. With ``"task": "fid"`` (and ``"root"``), runs the image
evaluation sweep of tests/test_evaluate_images.py instead (`evaluate_images`).
"""

import importlib.util
import json
import os
import sys
import time


def load_config(path: str, overrides: dict):
    """``get_config()`` of the config file at ``path`` with ``{"section.field": value}`` overrides."""
    module_spec = importlib.util.spec_from_file_location("config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config()
    for field, value in overrides.items():
        *parents, name = field.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[name] = value
    return config


def main(spec: dict) -> None:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={spec['devices']}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    import jax
    import numpy as np

    from flowjax import distributed

    if spec.get("coordinator"):
        distributed.initialize("on", spec["coordinator"], spec["num_processes"], spec["process_id"])

    if spec.get("task") == "fid":
        return evaluate_images(spec)

    from flowjax import train
    from flowjax.train import loop

    config = load_config(spec["config"], spec.get("overrides", {}))
    losses = []

    class RecordingWriter(loop.MetricWriter):
        def write_scalars(self, step, scalars):
            losses.append((step, scalars["loss"]))
            super().write_scalars(step, scalars)

    loop.MetricWriter = RecordingWriter
    if spec.get("die_after") is not None:
        make_advance = loop.make_advance_fn

        def dying_advance_fn(config, exp, step_key=None):
            advance = make_advance(config, exp, step_key)

            def advance_or_die(replicated, step):
                if step >= spec["die_after"]:
                    time.sleep(3)  # the checkpoint saved before (asynchronously, by all processes) is finished
                    os._exit(9)  # then no clean-up, no save: a host that is lost
                return advance(replicated, step)

            advance_or_die.close = advance.close
            return advance_or_die

        loop.make_advance_fn = dying_advance_fn

    state = train.train(config, spec["workdir"])
    flat = {}
    for prefix, tree in (("params", state.params), ("coupling", state.coupling_state)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    out = f"{spec['out']}.{jax.process_index()}.npz"
    np.savez(out, losses=np.array(losses, dtype=np.float64).reshape(-1, 2), **flat)


def evaluate_images(spec: dict) -> None:
    """The evaluation sweep with FID of tests/test_evaluate_images.py (its image folder under ``spec["root"]``,
    analytic field and stand-in Inception) in ``spec["workdir"]``; writes the rows to ``<out>.<process>.json``."""
    import pathlib

    import jax

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import test_evaluate_images as case

    from flowjax import evaluate, evaluate_fid

    evaluate_fid.inception.check_inception_file = lambda path: None
    evaluate_fid.fid_feature_fn = lambda config: case.make_features(0)
    config = case.make_config(pathlib.Path(spec["root"]))
    rows = evaluate.evaluate(config, spec["workdir"], case.make_apply(), case.PARAMS, 3, case.noise_one, "test_cfg")
    with open(f"{spec['out']}.{jax.process_index()}.json", "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
