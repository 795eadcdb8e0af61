"""Optimisers and schedules named by a student's :class:`~crysgnn_models.models.defaults.TrainingDefaults`."""

from __future__ import annotations

import torch


def make_optimizer(model: torch.nn.Module, settings: dict) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = settings["optimizer"], settings["lr"], settings["weight_decay"]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; known: adam, adamw, sgd")


def make_scheduler(optimizer: torch.optim.Optimizer, settings: dict, steps_per_epoch: int):
    """``multistep`` steps once per epoch, ``onecycle`` once per batch, ``none`` keeps the rate."""
    name = settings["scheduler"]
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(settings["milestones"]), gamma=settings["gamma"]
        )
    if name == "onecycle":
        total = max(1, settings["epochs"] * max(steps_per_epoch, 1))
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"], total_steps=total)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise ValueError(f"unknown scheduler {name!r}; known: multistep, onecycle, none")
