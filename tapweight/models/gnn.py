"""The Hu et al. 2020 GNN family (GIN, GCN, GraphSAGE, GAT) with edge embeddings, in PyG.

Parameter names and shapes match the state dicts of "Strategies for Pre-training Graph Neural
Networks" (``x_embedding1/2``, ``gnns.{i}...``, ``batch_norms.{i}``), so those weights load with
``strict=True``. Every layer adds self loops carrying bond type 4 (Hu et al.'s convention).
"""

from __future__ import annotations

import os
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing, global_mean_pool
from torch_geometric.utils import add_self_loops, degree, softmax

from tapweight.data.featurize import (
    NUM_ATOM_TYPES,
    NUM_BOND_DIRECTIONS,
    NUM_BOND_TYPES,
    NUM_CHIRALITY_TAGS,
    SELF_LOOP_BOND_TYPE,
)
from tapweight.errors import ModelError

__all__ = ["GNNType", "HuGNN", "load_pretrained_gnn"]

GNNType = Literal["gin", "gcn", "graphsage", "gat"]
JKMode = Literal["last", "concat", "max", "sum"]


class _EdgeEmbedding(nn.Module):
    """Bond type + bond direction embeddings, with self loops of type 4 appended."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPES, dim)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIRECTIONS, dim)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def with_self_loops(
        self, edge_index: Tensor, edge_attr: Tensor, num_nodes: int
    ) -> tuple[Tensor, Tensor]:
        edge_index, _ = add_self_loops(edge_index, num_nodes=num_nodes)
        loops = edge_attr.new_zeros((num_nodes, 2))
        loops[:, 0] = SELF_LOOP_BOND_TYPE
        edge_attr = torch.cat([edge_attr, loops], dim=0)
        return edge_index, self.edge_embedding1(edge_attr[:, 0]) + self.edge_embedding2(
            edge_attr[:, 1]
        )


class GINConv(MessagePassing):
    def __init__(self, dim: int) -> None:
        super().__init__(aggr="add")
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.edges = _EdgeEmbedding(dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self.edges.with_self_loops(edge_index, edge_attr, x.size(0))
        return self.mlp(self.propagate(edge_index, x=x, edge_emb=edge_emb))

    def message(self, x_j: Tensor, edge_emb: Tensor) -> Tensor:
        return x_j + edge_emb


class GCNConv(MessagePassing):
    def __init__(self, dim: int) -> None:
        super().__init__(aggr="add")
        self.linear = nn.Linear(dim, dim)
        self.edges = _EdgeEmbedding(dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self.edges.with_self_loops(edge_index, edge_attr, x.size(0))
        row, col = edge_index
        deg_inv_sqrt = degree(row, x.size(0), dtype=x.dtype).pow(-0.5)
        deg_inv_sqrt[torch.isinf(deg_inv_sqrt)] = 0
        norm = deg_inv_sqrt[row] * deg_inv_sqrt[col]
        return self.propagate(edge_index, x=self.linear(x), edge_emb=edge_emb, norm=norm)

    def message(self, x_j: Tensor, edge_emb: Tensor, norm: Tensor) -> Tensor:
        return norm.view(-1, 1) * (x_j + edge_emb)


class GraphSAGEConv(MessagePassing):
    def __init__(self, dim: int) -> None:
        super().__init__(aggr="mean")
        self.linear = nn.Linear(dim, dim)
        self.edges = _EdgeEmbedding(dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self.edges.with_self_loops(edge_index, edge_attr, x.size(0))
        out = self.propagate(edge_index, x=self.linear(x), edge_emb=edge_emb)
        return F.normalize(out, p=2, dim=-1)

    def message(self, x_j: Tensor, edge_emb: Tensor) -> Tensor:
        return x_j + edge_emb


class GATConv(MessagePassing):
    def __init__(self, dim: int, heads: int = 2, negative_slope: float = 0.2) -> None:
        super().__init__(aggr="add", node_dim=0)
        self.dim, self.heads, self.negative_slope = dim, heads, negative_slope
        self.weight_linear = nn.Linear(dim, heads * dim)
        self.att = nn.Parameter(torch.empty(1, heads, 2 * dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.edges = _EdgeEmbedding(heads * dim)
        nn.init.xavier_uniform_(self.att)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self.edges.with_self_loops(edge_index, edge_attr, x.size(0))
        x = self.weight_linear(x).view(-1, self.heads, self.dim)
        out = self.propagate(edge_index, x=x, edge_emb=edge_emb.view(-1, self.heads, self.dim))
        return out.mean(dim=1) + self.bias

    def message(self, x_i: Tensor, x_j: Tensor, edge_emb: Tensor, index: Tensor) -> Tensor:
        x_j = x_j + edge_emb
        alpha = F.leaky_relu(
            (torch.cat([x_i, x_j], dim=-1) * self.att).sum(-1), self.negative_slope
        )
        return x_j * softmax(alpha, index).unsqueeze(-1)


_CONVS: dict[str, type[nn.Module]] = {
    "gin": GINConv,
    "gcn": GCNConv,
    "graphsage": GraphSAGEConv,
    "gat": GATConv,
}


class HuGNN(nn.Module):
    """Node encoder of Hu et al. 2020; ``embed`` mean-pools node states into graph vectors.

    Args:
        gnn_type: ``gin``, ``gcn``, ``graphsage`` or ``gat``.
        num_layers: message-passing layers (Hu et al.: 5).
        emb_dim: hidden size (Hu et al.: 300).
        jk: how layer outputs are combined: ``last``, ``concat``, ``max`` or ``sum``.
        dropout: dropout after each layer.

    Example:
        >>> model = HuGNN("gin", num_layers=2, emb_dim=16)
        >>> model.out_dim
        16
    """

    def __init__(
        self,
        gnn_type: GNNType = "gin",
        num_layers: int = 5,
        emb_dim: int = 300,
        jk: JKMode = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if gnn_type not in _CONVS:
            raise ModelError(f"unknown GNN type {gnn_type!r}; choose one of {', '.join(_CONVS)}")
        if num_layers < 1:
            raise ModelError(f"num_layers must be at least 1, got {num_layers}")
        if jk not in ("last", "concat", "max", "sum"):
            raise ModelError(f"unknown jk mode {jk!r}; choose last, concat, max or sum")
        self.gnn_type, self.num_layers, self.emb_dim = gnn_type, num_layers, emb_dim
        self.jk, self.dropout = jk, dropout
        self.x_embedding1 = nn.Embedding(NUM_ATOM_TYPES, emb_dim)
        self.x_embedding2 = nn.Embedding(NUM_CHIRALITY_TAGS, emb_dim)
        self.gnns = nn.ModuleList(_CONVS[gnn_type](emb_dim) for _ in range(num_layers))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(emb_dim) for _ in range(num_layers))
        self.reset_parameters()

    @property
    def out_dim(self) -> int:
        return self.emb_dim * (self.num_layers + 1 if self.jk == "concat" else 1)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.x_embedding1.weight)
        nn.init.xavier_uniform_(self.x_embedding2.weight)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.gnn_type}, num_layers={self.num_layers}, "
            f"emb_dim={self.emb_dim}, jk={self.jk}, dropout={self.dropout})"
        )

    def forward(self, batch) -> Tensor:
        """Node representations ``[num_nodes, out_dim]``."""
        x, edge_index, edge_attr = batch.x, batch.edge_index, batch.edge_attr
        h = self.x_embedding1(x[:, 0]) + self.x_embedding2(x[:, 1])
        states = [h]
        for layer, (conv, norm) in enumerate(zip(self.gnns, self.batch_norms, strict=True)):
            h = norm(conv(h, edge_index, edge_attr))
            if layer < self.num_layers - 1:
                h = F.relu(h)
            h = F.dropout(h, self.dropout, training=self.training)
            states.append(h)
        if self.jk == "concat":
            return torch.cat(states, dim=1)
        if self.jk == "max":  # Hu et al. include the input embedding in max/sum
            return torch.stack(states).max(dim=0).values
        if self.jk == "sum":
            return torch.stack(states).sum(dim=0)
        return states[-1]

    def embed(self, batch) -> Tensor:
        """Graph representations ``[num_graphs, out_dim]`` (mean pooling, as Hu et al.)."""
        return global_mean_pool(self(batch), batch.batch, size=int(batch.num_graphs))


def _hu_key(key: str) -> str:
    """Our parameter name -> Hu et al.'s (edge embeddings live directly on the layer there)."""
    return key.replace(".edges.", ".")


def load_pretrained_gnn(
    name_or_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    gnn_type: GNNType | None = None,
    **kwargs,
) -> HuGNN:
    """Build a :class:`HuGNN` and load a Hu et al. state dict into it with ``strict=True``.

    Args:
        name_or_path: a registered name (``gcn_supervised_contextpred``) or a ``.pth`` path.
        gnn_type: architecture; inferred from the file name (``gcn_...``) when omitted.
    """
    from tapweight.data.paths import pretrained_weights_file

    path = os.fspath(name_or_path)
    if not os.path.isfile(path):
        path = os.fspath(pretrained_weights_file(path, data_dir))
    gnn_type = gnn_type or os.path.basename(path).split("_")[0]  # type: ignore[assignment]
    model = HuGNN(gnn_type, **kwargs)  # type: ignore[arg-type]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ModelError(f"{path}: not a readable torch state dict ({error})") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict, found {type(state).__name__}")
    ours = {_hu_key(k): k for k in model.state_dict()}
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    if missing or unexpected:
        raise ModelError(
            f"{path} does not fit a {gnn_type} HuGNN: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}; check gnn_type, num_layers and emb_dim"
        )
    mismatched = [k for k, v in state.items() if model.state_dict()[ours[k]].shape != v.shape]
    if mismatched:
        raise ModelError(f"{path}: shape mismatch for {mismatched[:4]}; check emb_dim")
    model.load_state_dict({ours[k]: v for k, v in state.items()}, strict=True)
    return model
