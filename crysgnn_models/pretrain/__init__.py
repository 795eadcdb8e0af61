"""CrysGNN pretraining: the losses (:mod:`.losses`), the run configuration and the training loop."""
