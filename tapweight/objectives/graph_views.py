"""Light graph views and augmentations for molecule objectives.

A :class:`GraphView` carries exactly what :class:`~tapweight.models.gnn.HuGNN` reads (``x``,
``edge_index``, ``edge_attr``, ``batch``, ``num_graphs``), so corrupting a batch never copies the
whole PyG ``Batch``. Augmentations are vectorised over the batch (GraphCL-style).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.utils import subgraph

from tapweight.data.featurize import MASK_ATOM_INDEX

__all__ = ["GraphView", "view_of", "mask_nodes", "drop_edges", "drop_nodes", "AUGMENTATIONS"]


class GraphView(NamedTuple):
    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    batch: Tensor
    num_graphs: int


def view_of(batch) -> GraphView:
    return GraphView(batch.x, batch.edge_index, batch.edge_attr, batch.batch, int(batch.num_graphs))


def mask_nodes(view: GraphView, rate: float) -> GraphView:
    """Replace a ``rate`` share of atoms by the mask token (index 119, no chirality)."""
    masked = torch.rand(view.x.size(0), device=view.x.device) < rate
    x = view.x.clone()
    x[masked] = torch.tensor([MASK_ATOM_INDEX, 0], device=x.device)
    return view._replace(x=x)


def drop_edges(view: GraphView, rate: float) -> GraphView:
    """Remove a ``rate`` share of directed edges."""
    keep = torch.rand(view.edge_index.size(1), device=view.x.device) >= rate
    return view._replace(edge_index=view.edge_index[:, keep], edge_attr=view.edge_attr[keep])


def drop_nodes(view: GraphView, rate: float) -> GraphView:
    """Remove a ``rate`` share of atoms with their bonds; every graph keeps at least one atom."""
    keep = torch.rand(view.x.size(0), device=view.x.device) >= rate
    first = torch.ones_like(view.batch, dtype=torch.bool)
    first[1:] = view.batch[1:] != view.batch[:-1]
    keep |= first
    edge_index, edge_attr = subgraph(
        keep, view.edge_index, view.edge_attr, relabel_nodes=True, num_nodes=view.x.size(0)
    )
    return GraphView(view.x[keep], edge_index, edge_attr, view.batch[keep], view.num_graphs)


AUGMENTATIONS = {"mask_nodes": mask_nodes, "drop_edges": drop_edges, "drop_nodes": drop_nodes}
