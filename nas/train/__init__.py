"""`nas train`: the reference EfficientNet(-EdgeTPU) training recipe in a custom tf.distribute loop.

One job per module: `recipe` (the `train:` section, presets, adapting defaults to the data),
`optim` (TF1-exact RMSProp, Adam), `ema` (TF1 ExponentialMovingAverage with num_updates),
`schedule` (warm-up + staircase decay, cosine), `augment` (RandAugment / AutoAugment v0 on tf.image),
`data` (the training input pipeline, data order a pure function of (seed, epoch)), `state` (the
checkpoint: raw, averaged and slot variables in one TF1-style file), `distribute` (strategies),
`loop` (the training loop), `run` (run directory, lock, metrics, curves, summary).
"""
