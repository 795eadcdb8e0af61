"""What pretraining and distillation share: devices and DDP, checkpoints, metric logs and plots."""
