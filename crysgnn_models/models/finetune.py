"""The "CrysGNN fine-tuned" baseline (method.md §6.4): the pretrained encoder plus a CGCNN-style head,
every weight trained on the property."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.crysgnn import CrysGNN, CrysGNNConfig
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.output import StudentOutput
from crysgnn_models.models.reference import pad_like_reference, reference_to_ours
from crysgnn_models.nn.encoder import CGCNNEncoder
from crysgnn_models.nn.pooling import mean_pool

DEFAULTS = TrainingDefaults(
    source="as the distilled students (method.md §6.4: same optimiser, epochs and splits), i.e. the "
    "distilled CGCNN's train.py settings",
)


class FineTunedCrysGNN(nn.Module):
    """``forward(batch) -> StudentOutput(prediction (G,), nodes (N, 64))``.

    The CrysGNN encoder (``config``: embedding without bias, 5 convolutions), then mean pool -> softplus
    -> ``conv_to_fc`` Linear(64 -> 128) -> softplus -> ``fc_out`` Linear(128 -> 1). ``pool_normalized``:
    pool the L2-normalised node embeddings (what CrysGNN pretrained on, the default) or the raw ones
    (the ablation of method.md §6.4). ``nodes``: raw node features after the last convolution. Build it
    from a pretrained CrysGNN with :meth:`from_crysgnn`.
    """

    def __init__(
        self, config: CrysGNNConfig | dict | None = None, hidden_dim: int = 128, pool_normalized: bool = True
    ) -> None:
        super().__init__()
        if isinstance(config, dict):  # as saved with a trained model
            config = CrysGNNConfig.from_dict(config)
        self.config = config = config or CrysGNNConfig()
        self.pool_normalized = pool_normalized
        self.encoder = CGCNNEncoder(
            n_conv=config.n_conv,
            node_dim=config.node_dim,
            embedding_bias=False,
            normalize=True,
            edge_start=config.edge_start,
            edge_stop=config.edge_stop,
            edge_step=config.edge_step,
        )
        self.conv_to_fc = nn.Linear(config.node_dim, hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, 1)

    @classmethod
    def from_crysgnn(
        cls, pretrained: CrysGNN | dict, config: CrysGNNConfig | None = None, **kwargs
    ) -> FineTunedCrysGNN:
        """A fresh model whose encoder is a trainable copy of ``pretrained``'s (a :class:`CrysGNN`, or a
        CrysGNN state dict, ours or the reference's, with ``config``); the decoders are dropped, the head
        is newly initialised. ``kwargs`` go to the constructor (``hidden_dim``, ``pool_normalized``)."""
        if isinstance(pretrained, CrysGNN):
            config, state = pretrained.config, pretrained.state_dict()
        else:
            state = reference_to_ours(pretrained)
        model = cls(config, **kwargs)
        encoder = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        model.encoder.load_state_dict(encoder)
        return model

    def forward(self, batch: GraphBatch) -> StudentOutput:
        if self.config.compat:
            batch = pad_like_reference(batch, self.config.max_neighbors, self.config.cutoff)
        embedded = self.encoder(batch)
        pooled = mean_pool(embedded.nodes if self.pool_normalized else embedded.raw, batch.batch, batch.ptr)
        hidden = F.softplus(self.conv_to_fc(F.softplus(pooled)))
        return StudentOutput(self.fc_out(hidden).squeeze(-1), embedded.raw)
