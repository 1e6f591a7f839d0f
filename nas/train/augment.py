"""RandAugment (2 layers, magnitude 10) and AutoAugment policy v0: NOT IMPLEMENTED YET.

`recipe.resolve` refuses `augment: randaugment|autoaugment` with a one-line error until these exist,
so no run silently trains without the augmentation it asked for.
"""


def randaugment(image, seed, layers: int, magnitude: float):
    raise NotImplementedError("RandAugment is not implemented yet")


def autoaugment_v0(image, seed):
    raise NotImplementedError("AutoAugment v0 is not implemented yet")
