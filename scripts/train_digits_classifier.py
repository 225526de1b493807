"""Train the FD-digits classifier and write its weights and the reference statistics.

    python scripts/train_digits_classifier.py

Trains `flowjax.models.digits_classifier.DigitsClassifier` with Adam on the training split of
`flowjax.data.digits` (1,497 images; the 300 test images of split seed 0 are held out), prints
the test accuracy, and writes (replacing them)

    flowjax/metrics/assets/digits_classifier.npz   classifier variables (flowjax.models.weights format)
    flowjax/metrics/assets/digits_test_stats.npz   mu, sigma of the test-split features

Everything is fixed by --seed, so running it again on the same platform regenerates identical
files. It trains on a CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flowjax.data import digits  # noqa: E402
from flowjax.metrics import fd_digits, fid  # noqa: E402
from flowjax.models import digits_classifier, weights  # noqa: E402


def random_shift(key: jax.Array, images: jax.Array) -> jax.Array:
    """Translate each image by -1, 0 or +1 pixel per axis (background -1 fills the border)."""
    size = images.shape[1]
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 3)
    return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (size, size, 1)))(padded, offsets)


def train(
    key: jax.Array, images: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int, lr: float
) -> digits_classifier.Variables:
    """Adam on softmax cross-entropy with random 1-pixel shifts; each epoch a fresh permutation."""
    key, init_key = jax.random.split(key)
    variables = digits_classifier.init(init_key)
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(variables)
    images, labels = jnp.asarray(images), jnp.asarray(labels)

    @jax.jit
    def step(variables, opt_state, key, x, y):
        x = random_shift(key, x)

        def loss_fn(v):
            return optax.softmax_cross_entropy_with_integer_labels(digits_classifier.logits(v, x), y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(variables)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(variables, updates), opt_state, loss

    steps_per_epoch = images.shape[0] // batch_size
    for epoch in range(epochs):
        order_key, shift_key = jax.random.split(jax.random.fold_in(key, epoch))
        order = jax.random.permutation(order_key, images.shape[0])
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            variables, opt_state, loss = step(
                variables, opt_state, jax.random.fold_in(shift_key, i), images[idx], labels[idx]
            )
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: train loss {float(loss):.4f}")
    return variables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="training seed (init and batch order)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    start = time.time()
    x_train, y_train = digits.load("train")
    x_test, y_test = digits.load("test")
    variables = train(jax.random.key(args.seed), x_train, y_train, args.epochs, args.batch_size, args.lr)
    accuracy = float(np.mean(np.argmax(digits_classifier.logits(variables, x_test), -1) == y_test))
    print(f"test accuracy {accuracy:.4f} ({x_test.shape[0]} images)")

    weights.save_variables(fd_digits.WEIGHTS_PATH, variables, overwrite=True)
    mu, sigma = fid.statistics(np.asarray(digits_classifier.features(variables, x_test)))
    fid.save_stats(fd_digits.STATS_PATH, mu, sigma, overwrite=True)
    print(f"wrote {fd_digits.WEIGHTS_PATH} ({os.path.getsize(fd_digits.WEIGHTS_PATH)} bytes)")
    print(f"wrote {fd_digits.STATS_PATH}")
    print(f"FD-digits: test split {fd_digits.fd_digits(x_test):.4g}, train split {fd_digits.fd_digits(x_train):.4g}")
    print(f"done in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
