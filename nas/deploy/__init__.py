"""From a trained model to a deployed one: checkpoints (`checkpoints.save_checkpoint` / `load_model`),
TFLite export (`exporter`), evaluation (`evaluate`) and the reference's eval preprocessing."""
