"""``crysgnn``: pretrain CrysGNN on a store, distil it into students, score and embed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="CrysGNN pretraining and distillation.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """CrysGNN models over crystal_data stores."""


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command()
def env(device: Annotated[str, typer.Option(help="Device to probe.")] = "auto") -> None:
    """Print the torch build and the device training would use."""
    import torch

    from crysgnn_models.training.distributed import pick_device

    chosen = pick_device(device)
    typer.echo(f"torch {torch.__version__}; device {chosen}")
    if chosen.type == "cuda":
        typer.echo(f"gpu {torch.cuda.get_device_name(chosen)}")


def _weights(adjacency: float, features: float, spacegroup: float, contrastive: float) -> dict[str, float]:
    return {
        "adjacency": adjacency,
        "features": features,
        "spacegroup": spacegroup,
        "contrastive": contrastive,
    }


@app.command()
def pretrain(
    data: Annotated[Path, typer.Option(help="Store to pretrain on (labels unused).")],
    out: Annotated[Path, typer.Option(help="Folder for checkpoints, log.csv and loss.png.")],
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Crystals per batch per process.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate (the reference script used 0.03).")] = 1e-3,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    amp: Annotated[bool, typer.Option(help="bfloat16 autocast.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the data order.")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    mask_ratio: Annotated[
        float, typer.Option(help="Mask this fraction of atoms for feature prediction (0: the reference).")
    ] = 0.0,
    w_adjacency: Annotated[float, typer.Option(help="Weight of connectivity reconstruction.")] = 0.25,
    w_features: Annotated[float, typer.Option(help="Weight of atom-feature reconstruction.")] = 0.25,
    w_spacegroup: Annotated[float, typer.Option(help="Weight of space-group classification.")] = 0.25,
    w_contrastive: Annotated[float, typer.Option(help="Weight of crystal-system NT-Xent.")] = 0.25,
    n_conv: Annotated[
        int, typer.Option(help="Convolutions (5: CrysGNN; 3 with --no-normalize: CrysAE).")
    ] = 5,
    normalize: Annotated[bool, typer.Option(help="L2-normalise node embeddings (CrysGNN).")] = True,
    save_every: Annotated[int, typer.Option(help="Checkpoint every this many steps.")] = 500,
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
) -> None:
    """Pretrain CrysGNN on a store; under `torchrun --nproc-per-node N --no-python crysgnn pretrain ...`
    each process trains on its share (DDP)."""
    from crysgnn_models.pretrain.config import PretrainConfig
    from crysgnn_models.pretrain.trainer import pretrain as run

    _log_to_stderr()
    config = PretrainConfig(
        data=str(data),
        out=str(out),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        amp=amp,
        num_workers=workers,
        max_steps=max_steps,
        save_every=save_every,
        weights=_weights(w_adjacency, w_features, w_spacegroup, w_contrastive),
        mask_ratio=mask_ratio,
        model={"n_conv": n_conv, "normalize": normalize},
    )
    try:
        result = run(config, resume=resume, progress=progress)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        raise _fail(str(error)) from error
    typer.echo(
        f"pretrained {result.steps} steps ({result.epochs} epochs) in {result.seconds:.1f} s; "
        f"last loss {result.final_loss:.4f}, best epoch loss {result.best_loss:.4f}; {result.out}"
    )


@app.command()
def distill(
    data: Annotated[str, typer.Option(help="Dataset name (jarvis, mp2018, oqmd-exp) or store path.")],
    target: Annotated[str, typer.Option(help="Target label.")],
    out: Annotated[Path, typer.Option(help="Folder for model.pt, results.json, parity.png.")],
    teacher: Annotated[
        Path | None, typer.Option(help="CrysGNN checkpoint (ours or the released reference).")
    ] = None,
    student: Annotated[
        str, typer.Option(help="cgcnn, crysxpp, gatgnn, alignn, crysgnn-finetuned.")
    ] = "cgcnn",
    alpha: Annotated[float, typer.Option(help="Distillation weight; 0 trains the vanilla student.")] = 0.5,
    split_scheme: Annotated[
        str | None, typer.Option(help="alignn (default), 20-10-70, 60-10-30, A-B-C, nA-B-C.")
    ] = None,
    split_seed: Annotated[int | None, typer.Option(help="Seed of the split (default: the scheme's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and shuffling.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the student's paper).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default: the student's paper).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the student's paper).")] = None,
    patience: Annotated[int | None, typer.Option(help="Stop after this many epochs without gain.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    offline: Annotated[bool, typer.Option(help="Never touch the network.")] = False,
    student_args: Annotated[
        str | None, typer.Option(help="Student constructor arguments as JSON, e.g. '{\"hidden\": 128}'.")
    ] = None,
    train_with: Annotated[
        list[str] | None,
        typer.Option(
            help="More training data, e.g. 'data=mp2018,target=e_form' (its train split; optional "
            "scheme=, split=, split_seed=). Repeatable."
        ),
    ] = None,
    test_on: Annotated[
        str | None,
        typer.Option(help="Test on other data, e.g. 'data=oqmd-exp,target=e_form_expt' (all of it)."),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Fine-tune from a finished run of the same student (its model.pt).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
) -> None:
    """Train a student on one target, distilled from a frozen CrysGNN (or vanilla with --alpha 0);
    select on validation, score test once. --test-on, --init and --train-with give the DFT-plus-experiment
    protocol (docs/models.md §6)."""
    from crysgnn_models.distill.config import DistillConfig
    from crysgnn_models.distill.trainer import distill as run

    _log_to_stderr()
    config = DistillConfig(
        data=data,
        target=target,
        out=str(out),
        student=student,
        teacher=str(teacher) if teacher else None,
        alpha=alpha,
        scheme=split_scheme,
        split_seed=split_seed,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        device=device,
        num_workers=workers,
        offline=offline or None,
        student_kwargs=json.loads(student_args) if student_args else {},
        init=str(init) if init else None,
    )
    try:
        config.train_with = [_data_ref(text) for text in train_with or []]
        config.test_on = _data_ref(test_on) if test_on else None
        result = run(config, progress=progress)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise _fail(str(error)) from error
    unit = result.results["unit"] or ""
    maes = ", ".join(f"{name} {value:.4f}" for name, value in result.mae.items())
    typer.echo(f"{student} alpha={alpha:g}: MAE {maes} {unit} (best epoch {result.best_epoch}); {result.out}")


def _data_ref(text: str) -> dict:
    """``data=NAME,target=LABEL[,scheme=S][,split=X][,split_seed=K]`` as a dict."""
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not sep or not key.strip() for key, sep, _ in pairs):
        raise ValueError(
            f"{text!r}: expected comma-separated key=value pairs, e.g. data=mp2018,target=e_form"
        )
    ref = {key.strip(): value.strip() for key, _, value in pairs}
    if "split_seed" in ref:
        ref["split_seed"] = int(ref["split_seed"])
    return ref


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="model.pt written by `crysgnn distill`.")],
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    data: Annotated[str | None, typer.Option(help="Other data (default: the model's own).")] = None,
    target: Annotated[str | None, typer.Option(help="Other target (default: the model's own).")] = None,
    split_scheme: Annotated[str | None, typer.Option(help="Other split scheme.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    offline: Annotated[bool, typer.Option(help="Never touch the network.")] = False,
) -> None:
    """Re-score a saved student on a split; print its MAE."""
    from crysgnn_models.distill.evaluate import evaluate_saved

    _log_to_stderr()
    try:
        scored = evaluate_saved(
            model,
            split,
            data=data,
            target=target,
            scheme=split_scheme,
            device=device,
            offline=offline or None,
        )
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise _fail(str(error)) from error
    typer.echo(f"{split}: MAE {scored.mae:.6f} over {len(scored.target)} crystals")


@app.command()
def embed(
    inputs: Annotated[list[Path], typer.Argument(help="A store, or CIF files / folders of CIF files.")],
    teacher: Annotated[Path, typer.Option(help="CrysGNN checkpoint (ours or the released reference).")],
    out: Annotated[Path, typer.Option(help="Parquet file: one row per crystal.")],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    workers: Annotated[int, typer.Option(help="Processes to read CIF files.")] = 1,
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
) -> None:
    """Write CrysGNN's per-atom and per-crystal embeddings (Parquet: uid, atomic_numbers,
    atom_embeddings, crystal_embedding) for a store or for CIF files."""
    from crysgnn_models.distill.teacher import load_teacher
    from crysgnn_models.embed import embed_files, embed_store
    from crysgnn_models.training.distributed import pick_device

    _log_to_stderr()
    chosen = pick_device(device)
    try:
        model = load_teacher(teacher)
        if len(inputs) == 1 and (inputs[0] / "manifest.json").is_file():
            table = embed_store(model, inputs[0], out, device=chosen, progress=progress)
            problems: list[str] = []
        else:
            table, problems = embed_files(
                model, inputs, out, workers=workers, device=chosen, progress=progress
            )
    except (FileNotFoundError, ValueError) as error:
        raise _fail(str(error)) from error
    for problem in problems:
        typer.echo(f"skipped {problem}", err=True)
    typer.echo(f"embedded {table.num_rows} crystals into {out} ({len(problems)} unreadable)")


@app.command()
def experiment(
    table: Annotated[
        str, typer.Argument(help="A bundled table (paper-main, paper-sparse, ...) or a YAML file.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for runs/ and results.{md,csv,png}.")],
    teacher: Annotated[Path | None, typer.Option(help="CrysGNN checkpoint for distilled columns.")] = None,
    data: Annotated[
        list[str] | None, typer.Option(help="NAME=STORE: read the table's dataset NAME from a store path.")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds (default: the table's).")] = None,
    rows: Annotated[
        list[str] | None, typer.Option(help="A row to run (label or folder name); repeatable. Default all.")
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns to run, e.g. cgcnn,cgcnn-D (default all).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override every run's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override every run's batch size.")] = None,
    student_args: Annotated[
        str | None,
        typer.Option(help='Per-student constructor arguments, JSON: \'{"alignn": {"hidden": 64}}\'.'),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    offline: Annotated[bool, typer.Option(help="Never touch the network.")] = False,
    report_only: Annotated[bool, typer.Option(help="Only rewrite the report from finished runs.")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """Run a whole table of the paper (datasets x students x vanilla/distilled x seeds), resuming
    finished runs, and write results.md / results.csv / results.png next to the paper's numbers."""
    from dataclasses import replace

    from crysgnn_models.experiments.report import write_report
    from crysgnn_models.experiments.runner import plan_runs, run_table
    from crysgnn_models.experiments.table import load_table, select

    _log_to_stderr()
    try:
        spec = select(
            load_table(table),
            rows=rows,
            columns=columns.split(",") if columns else None,
        )
        if seeds:
            spec = replace(spec, seeds=tuple(int(s) for s in seeds.split(",")))
        paths = dict(item.split("=", 1) for item in data or [])
        overrides: dict = {}
        if epochs is not None:
            overrides["epochs"] = epochs
        if batch_size is not None:
            overrides["batch_size"] = batch_size
        if student_args:
            overrides["student_kwargs"] = json.loads(student_args)
        if report_only:
            runs = plan_runs(spec, out)
        else:
            runs = run_table(
                spec,
                out,
                teacher=str(teacher) if teacher else None,
                data_paths=paths,
                overrides=overrides,
                device=device,
                offline=offline or None,
                progress=progress,
            )
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise _fail(str(error)) from error
    written = write_report(spec, runs, out)
    finished = sum(run.done for run in runs)
    typer.echo(f"{spec.name}: {finished}/{len(runs)} runs finished; {written['md']}")
    typer.echo(written["md"].read_text())


@app.command()
def demo(
    store: Annotated[
        Path, typer.Option(help="A store with formation energies (`crystal-data demo` builds one).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the teacher and both students.")] = Path(
        "demo-models"
    ),
    pretrain_epochs: Annotated[int, typer.Option(help="CrysGNN pretraining epochs.")] = 15,
    student_epochs: Annotated[int, typer.Option(help="CGCNN epochs, each run.")] = 60,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """Pretrain CrysGNN briefly on the store, then train CGCNN vanilla and distilled on formation energy
    (same split, same seed) and print both test MAEs (CPU, a few minutes on the bundled sample)."""
    from crysgnn_models.demo import run_demo

    _log_to_stderr()
    result = run_demo(
        store, out, pretrain_epochs=pretrain_epochs, student_epochs=student_epochs, progress=progress
    )
    unit = result.unit or ""
    typer.echo(f"teacher: {result.teacher}")
    typer.echo(f"CGCNN vanilla   test MAE {result.vanilla_mae:.4f} {unit}")
    typer.echo(f"CGCNN distilled test MAE {result.distilled_mae:.4f} {unit}")
