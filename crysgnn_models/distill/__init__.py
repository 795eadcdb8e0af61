"""Knowledge distillation from a frozen CrysGNN teacher into property predictors (method.md §6)."""
