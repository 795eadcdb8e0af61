"""crysgnn_models: CrysGNN pretraining and distillation over crystal_data stores."""
