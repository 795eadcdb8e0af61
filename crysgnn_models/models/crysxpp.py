"""CrysXPP student (Das et al., npj Comput Mater 2022; method.md §9.1): CGCNN with a learnable feature
selector, its convolutions optionally initialised from a CrysAE autoencoder."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.cgcnn import CGCNN
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.nn.atom_features import AtomFeatures

DEFAULTS = TrainingDefaults(
    optimizer="sgd",
    lr=0.01,
    batch_size=256,
    epochs=300,
    scheduler="multistep",
    milestones=(100,),
    gamma=0.1,
    source="CrysXPP main.py defaults (method.md §9.1; README says lr 0.003); the schedule is CGCNN's "
    "(milestone 100, x0.1) [unverified for CrysXPP]",
)

_CONV_KEY = re.compile(r"^(?:.*\.)?convs\.(\d+)\.(.+)$")


class CrysXPP(CGCNN):
    """:class:`CGCNN` whose input features are multiplied element-wise by ``feature_selector`` (92,), a
    learnable mask initialised to ones (no sparsity penalty, as in the reference where the L1 term is
    commented out). 80,925 parameters with the defaults. Initialise the convolutions from a pretrained
    CrysAE (or any CGCNN encoder of as many convolutions) with :func:`load_encoder_convs`."""

    def __init__(self, node_dim: int = 64, n_conv: int = 3, hidden_dim: int = 128) -> None:
        super().__init__(node_dim, n_conv, hidden_dim)
        self.feature_selector = nn.Parameter(torch.ones(AtomFeatures.num_features))

    def input_features(self, batch: GraphBatch) -> torch.Tensor:
        return self.encoder.atom_features(batch.z) * self.feature_selector


def load_encoder_convs(student: CGCNN, source: nn.Module | Mapping[str, torch.Tensor]) -> list[str]:
    """Copy the convolution weights (and their BatchNorm statistics) of a pretrained encoder into
    ``student.encoder.convs``; the source's embedding and decoders are not used (method.md §9.1).

    ``source``: a model (e.g. a CrysAE-configured :class:`~crysgnn_models.models.crysgnn.CrysGNN`) or
    its state dict, in our key layout (``encoder.convs.k.*``) or the reference's (``convs.k.*``, with
    optional ``module.`` prefixes). The number of convolutions and their sizes must match. Returns the
    student keys written."""
    state = source.state_dict() if isinstance(source, nn.Module) else source
    convs: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _CONV_KEY.match(key)
        if match:
            convs[f"{match.group(1)}.{match.group(2)}"] = value
    have = len({key.split(".", 1)[0] for key in convs})
    want = len(student.encoder.convs)
    if have != want:
        raise ValueError(f"source has {have} convolutions, the student {want}: they must match")
    target = student.encoder.convs.state_dict()
    wrong = [
        f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in convs.items()
        if k in target and v.shape != target[k].shape
    ]
    if wrong:
        raise ValueError(f"convolution shapes differ: {wrong}")
    student.encoder.convs.load_state_dict(convs)
    return [f"encoder.convs.{key}" for key in convs]
