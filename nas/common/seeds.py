"""Seeds: any non-negative integer a user gives, mapped into the range every library accepts.

numpy's legacy `np.random.seed` (which `keras.utils.set_random_seed` calls) takes [0, 2**32), and
TensorFlow's op seeds want [0, 2**31 - 1]. A run seed is therefore never passed on directly when it
could leave those ranges: `derive(seed, purpose, index)` is the seed for one purpose (a trial's
proxy training, ...), and a value outside the range is folded into it by hashing (blake2b of
(seed, purpose, index)), so every seed works and different inputs stay independent.

Compatibility: a derived value that was already in range is kept as it was (the identity), so runs
whose seeds worked before this module reproduce exactly; only seeds that used to fail are hashed.
"""

from __future__ import annotations

import hashlib

from nas.common.errors import UserError

NUMPY_LIMIT = 2**32  # np.random.seed: [0, 2**32)
TF_LIMIT = 2**31 - 1  # tf.random.set_seed / op seeds: [0, 2**31 - 1)
SAFE_LIMIT = min(NUMPY_LIMIT, TF_LIMIT)  # what every library accepts


def hashed(*parts: object, limit: int = SAFE_LIMIT) -> int:
    """A well-mixed integer in [0, limit) determined by `parts` (their reprs, so types matter)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % limit


def fit_seed(value: int, purpose: str, limit: int = NUMPY_LIMIT) -> int:
    """`value` itself when it is a valid seed below `limit`, else a hash of it into [0, SAFE_LIMIT)."""
    if 0 <= value < limit:
        return value
    return hashed(value, purpose, limit=SAFE_LIMIT)


def check_seed(value: object, what: str = "seed") -> int:
    """A user's seed: any non-negative whole number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{what}: expected a non-negative whole number, got {value!r}")
    return value
