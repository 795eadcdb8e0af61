"""``crysgnn``: the model side. Pretraining and distillation commands arrive with their issues."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="CrysGNN pretraining and distillation.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """CrysGNN models over crystal_data stores."""


@app.command()
def env(device: Annotated[str, typer.Option(help="Device to probe.")] = "auto") -> None:
    """Print the torch build and the device training would use."""
    import torch

    chosen = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    typer.echo(f"torch {torch.__version__}; device {chosen}")
    if chosen.startswith("cuda"):
        typer.echo(f"gpu {torch.cuda.get_device_name(torch.device(chosen))}")
