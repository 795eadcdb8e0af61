"""All ordered atom pairs (i, j) of every crystal of a batch, laid out for batched matrix products.

A pair decoder scores every ordered pair of atoms of each crystal: sum over crystals of n², far fewer
than the (sum of n)² pairs of the whole batch. Crystals are grouped by padded size (sizes rounded up
to the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, ...: at most 1.5x per side), and each group is one dense
block (G_b, R, C): row r of crystal b holds pairs (i = row atom r, j = column atom c). A few groups
per batch, each one ``bmm``: no Python loop over crystals.

Memory bound: a crystal with more than ``pair_budget`` pairs keeps only ``r = max(1, budget // n)``
of its n rows (centre atoms i), drawn uniformly without replacement; all n columns of a kept row
stay, so every kept row carries all of its (at most 12) incoming edges. Each pair then stands for
``n / r`` pairs (its inverse inclusion probability, :attr:`PairBlock.scale`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PairBlock:
    """``G_b`` crystals padded to the same shape. ``rows`` (G_b, R) / ``cols`` (G_b, C): batch-wide
    node numbers of the row atoms i and column atoms j, ``num_nodes`` where padded. ``scale`` (G_b,):
    how many pairs each of the crystal's pairs stands for (1 unless rows were sampled)."""

    rows: torch.Tensor
    cols: torch.Tensor
    scale: torch.Tensor

    def valid(self, num_nodes: int) -> torch.Tensor:
        """(G_b, R, C) bool: the pair is real (neither atom is padding)."""
        return (self.rows < num_nodes).unsqueeze(2) & (self.cols < num_nodes).unsqueeze(1)


@dataclass(frozen=True)
class PairLayout:
    """The blocks of one batch plus what maps an edge to its pair: pair (i, j) of crystal g sits at
    flat position ``offset[g] + row_slot[i] * width[g] + (j - ptr[g])``, blocks one after another."""

    blocks: list[PairBlock]
    offset: torch.Tensor
    """(G,) int64 start of crystal g's (R, C) panel in the flat numbering."""
    width: torch.Tensor
    """(G,) int64 C, the padded column count of crystal g's block."""
    row_slot: torch.Tensor
    """(N,) int64 row of atom i in its crystal's panel, -1 where its row was not sampled."""
    ptr: torch.Tensor

    @property
    def num_pairs(self) -> int:
        """Length of the flat numbering (padding included)."""
        return sum(block.rows.numel() * block.cols.shape[1] for block in self.blocks)

    def edge_counts(self, edge_index: torch.Tensor, max_count: int = 5) -> list[torch.Tensor]:
        """Per block, (G_b, R, C) int64: how many edges j -> i (``edge_index[0]`` = j) each pair has,
        capped at ``max_count`` (the reference's adjacency target, method.md §1.3); 0 on padding."""
        source, target = edge_index[0], edge_index[1]
        slot = self.row_slot[target]
        kept = slot >= 0
        source, target, slot = source[kept], target[kept], slot[kept]
        graph = torch.searchsorted(self.ptr, target, right=True) - 1
        flat = self.offset[graph] + slot * self.width[graph] + (source - self.ptr[graph])
        counts = torch.bincount(flat, minlength=self.num_pairs).clamp_(max=max_count)
        sizes = [block.rows.numel() * block.cols.shape[1] for block in self.blocks]
        return [
            part.view(block.rows.shape[0], block.rows.shape[1], block.cols.shape[1])
            for part, block in zip(counts.split(sizes), self.blocks)
        ]


def padded_size(n: torch.Tensor) -> torch.Tensor:
    """Round each size up to the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (2^k and 3 * 2^k)."""
    top = max(int(n.max()) if n.numel() else 1, 1)
    ladder = sorted(
        {1, *(2**k for k in range(top.bit_length() + 1)), *(3 * 2**k for k in range(top.bit_length()))}
    )
    ladder_t = torch.tensor(ladder, dtype=torch.int64, device=n.device)
    return ladder_t[torch.searchsorted(ladder_t, n)]


def pair_layout(
    ptr: torch.Tensor, pair_budget: int | None = None, generator: torch.Generator | None = None
) -> PairLayout:
    """The pair blocks of a batch with node offsets ``ptr`` (G + 1,). ``pair_budget``: the most pairs
    kept per crystal (``None``: all); rows of larger crystals are sampled with ``generator`` (on the
    CPU; the global generator when ``None``), so the layout is deterministic given its seed."""
    device = ptr.device
    sizes = ptr[1:] - ptr[:-1]
    num_graphs, num_nodes = sizes.numel(), int(ptr[-1])
    batch = torch.repeat_interleave(torch.arange(num_graphs, device=device), sizes)
    local = torch.arange(num_nodes, device=device) - ptr[batch]
    rows = sizes.clone()
    row_slot = local
    if pair_budget is not None:
        sampled = sizes * sizes > pair_budget
        if bool(sampled.any()):
            rows = torch.where(sampled, (pair_budget // sizes.clamp(min=1)).clamp(min=1), sizes)
            # a uniform random order within each crystal: random keys, then a stable sort by crystal
            keys = torch.rand(num_nodes, generator=generator).to(device)
            order = torch.argsort(keys)
            order = order[torch.argsort(batch[order], stable=True)]
            rank = torch.empty_like(local)
            rank[order] = local
            row_slot = torch.where(sampled[batch], rank, local)
            row_slot = torch.where(row_slot < rows[batch], row_slot, -1)
    scale = sizes.double() / rows.clamp(min=1).double()
    padded_rows, padded_cols = padded_size(rows), padded_size(sizes)
    top = int(padded_cols.max()) + 1 if num_graphs else 1
    groups, group_of = torch.unique(padded_rows * top + padded_cols, return_inverse=True)

    offset = torch.zeros(num_graphs, dtype=torch.int64, device=device)
    width = padded_cols
    blocks: list[PairBlock] = []
    start = 0
    for k in range(groups.numel()):
        members = torch.nonzero(group_of == k).squeeze(1)
        r, c = int(padded_rows[members[0]]), int(padded_cols[members[0]])
        offset[members] = start + torch.arange(members.numel(), device=device) * (r * c)
        start += members.numel() * r * c
        blocks.append(
            PairBlock(
                rows=_panel(members, r, batch, row_slot, ptr, num_nodes),
                cols=_panel(members, c, batch, local, ptr, num_nodes),
                scale=scale[members],
            )
        )
    return PairLayout(blocks, offset, width, row_slot, ptr)


def _panel(
    members: torch.Tensor,
    length: int,
    batch: torch.Tensor,
    slot: torch.Tensor,
    ptr: torch.Tensor,
    num_nodes: int,
) -> torch.Tensor:
    """(len(members), length): the node at each slot of each member crystal, ``num_nodes`` elsewhere."""
    position = torch.full((ptr.numel() - 1,), -1, dtype=torch.int64, device=ptr.device)
    position[members] = torch.arange(members.numel(), device=ptr.device)
    nodes = torch.nonzero((position[batch] >= 0) & (slot >= 0)).squeeze(1)
    panel = torch.full((members.numel(), length), num_nodes, dtype=torch.int64, device=ptr.device)
    panel[position[batch[nodes]], slot[nodes]] = nodes
    return panel
