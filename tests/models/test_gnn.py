"""The Hu et al. GNN family: pretrained weights, shapes, layer maths and errors."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from tapweight.data.featurize import HuFeaturizer
from tapweight.data.molecules import read_molecule_table
from tapweight.data.registry import WEIGHTS_KEY
from tapweight.errors import ModelError
from tapweight.models.gnn import HuGNN, load_pretrained_gnn

ARCHS = ["gcn", "graphsage", "gat"]


def _batch(smiles: list[str]) -> Batch:
    featurize = HuFeaturizer(motifs=False)
    graphs = [featurize(s) for s in smiles]
    return Batch.from_data_list([g for g in graphs if g is not None])


@pytest.fixture(scope="module")
def real_batch(data_dir) -> Batch:
    """The first 16 parseable BBBP molecules as one batch."""
    table = read_molecule_table("bbbp", data_dir)
    featurize = HuFeaturizer(motifs=False)
    graphs = []
    for smiles in table.smiles:
        graph = featurize(smiles)
        if graph is not None:
            graphs.append(graph)
        if len(graphs) == 16:
            break
    return Batch.from_data_list(graphs)


@pytest.fixture
def toy_batch() -> Batch:
    return _batch(["CCO", "c1ccccc1O", "C[C@H](N)C(=O)O", "C", "F/C=C/F"])


# ------------------------------------------------------------------------ pretrained weights


@pytest.mark.dataset
@pytest.mark.parametrize("arch", ARCHS)
def test_pretrained_weights_load_strictly_and_match_the_file(arch, data_dir, real_batch):
    name = f"{arch}_supervised_contextpred"
    model = load_pretrained_gnn(name, data_dir=data_dir)
    assert model.gnn_type == arch and model.num_layers == 5 and model.emb_dim == 300
    state = torch.load(
        data_dir / WEIGHTS_KEY / f"{name}.pth", map_location="cpu", weights_only=True
    )
    ours = model.state_dict()
    assert len(ours) == len(state)
    assert torch.equal(ours["x_embedding1.weight"], state["x_embedding1.weight"])
    assert torch.equal(ours["x_embedding2.weight"], state["x_embedding2.weight"])
    for layer in (0, 4):
        for table in ("edge_embedding1", "edge_embedding2"):
            assert torch.equal(
                ours[f"gnns.{layer}.edges.{table}.weight"], state[f"gnns.{layer}.{table}.weight"]
            )
    assert torch.equal(ours["batch_norms.4.running_var"], state["batch_norms.4.running_var"])
    for key, value in state.items():  # every tensor made it over
        assert torch.equal(ours[_our_key(key)], value), key

    model.eval()
    with torch.no_grad():
        nodes = model(real_batch)
        graphs = model.embed(real_batch)
    assert nodes.shape == (real_batch.num_nodes, 300)
    assert graphs.shape == (16, 300)
    assert torch.isfinite(nodes).all() and torch.isfinite(graphs).all()
    # pretrained weights, not a fresh init: a random model gives other embeddings
    fresh = HuGNN(arch).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.embed(real_batch), graphs)


def _our_key(hu_key: str) -> str:
    parts = hu_key.split(".")
    if len(parts) == 4 and parts[0] == "gnns" and parts[2].startswith("edge_embedding"):
        return ".".join([parts[0], parts[1], "edges", parts[2], parts[3]])
    return hu_key


@pytest.mark.dataset
def test_graph_embeddings_do_not_leak_across_a_batch(data_dir, real_batch):
    model = load_pretrained_gnn("gat_supervised_contextpred", data_dir=data_dir).eval()
    graphs = real_batch.to_data_list()
    with torch.no_grad():
        together = model.embed(real_batch)
        alone = torch.cat([model.embed(Batch.from_data_list([g])) for g in graphs[:4]])
    torch.testing.assert_close(together[:4], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.dataset
def test_wrong_architecture_weights_are_refused(data_dir):
    path = data_dir / WEIGHTS_KEY / "gat_supervised_contextpred.pth"
    with pytest.raises(ModelError, match="does not fit a gcn HuGNN.*gnn_type"):
        load_pretrained_gnn(path, gnn_type="gcn")
    with pytest.raises(ModelError, match="does not fit a gat HuGNN"):
        load_pretrained_gnn("gcn_supervised", data_dir=data_dir, gnn_type="gat")
    with pytest.raises(ModelError, match="shape mismatch.*emb_dim"):
        load_pretrained_gnn("gcn_supervised", data_dir=data_dir, emb_dim=64)
    with pytest.raises(ModelError, match="does not fit.*num_layers"):
        load_pretrained_gnn("gcn_supervised", data_dir=data_dir, num_layers=3)


def test_non_torch_file_is_refused(tmp_path):
    junk = tmp_path / "gcn_junk.pth"
    junk.write_text("this is not a pickle\n")
    with pytest.raises(ModelError, match="not a readable torch state dict"):
        load_pretrained_gnn(junk)
    with pytest.raises(ModelError, match="not a readable torch state dict"):
        load_pretrained_gnn(junk, gnn_type="gin")
    tensor_file = tmp_path / "gcn_tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ModelError, match="expected a state dict, found Tensor"):
        load_pretrained_gnn(tensor_file)


def test_round_trip_of_a_hu_format_state_dict(tmp_path, toy_batch):
    source = HuGNN("gin", num_layers=2, emb_dim=16).eval()
    hu_state = {k.replace(".edges.", "."): v for k, v in source.state_dict().items()}
    path = tmp_path / "gin_custom.pth"
    torch.save(hu_state, path)
    loaded = load_pretrained_gnn(path, num_layers=2, emb_dim=16).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(toy_batch), source(toy_batch))


def test_missing_weights_file_offline(tmp_path):
    with pytest.raises(ModelError, match="gat_contextpred.pth.*not found"):
        load_pretrained_gnn("gat_contextpred", data_dir=tmp_path)


# --------------------------------------------------------------------------- architecture


def test_gin_random_init_shapes(toy_batch):
    model = HuGNN("gin", num_layers=3, emb_dim=32)
    nodes = model(toy_batch)
    assert nodes.shape == (toy_batch.num_nodes, 32)
    assert model.embed(toy_batch).shape == (5, 32)
    assert model.out_dim == 32
    nodes.sum().backward()
    assert model.x_embedding1.weight.grad is not None
    assert model.gnns[0].edges.edge_embedding1.weight.grad is not None


@pytest.mark.dataset
@pytest.mark.parametrize("arch", ["gin", *ARCHS])
def test_forward_and_embed_on_a_real_batch(arch, real_batch):
    model = HuGNN(arch, num_layers=5, emb_dim=64).eval()
    with torch.no_grad():
        nodes, graphs = model(real_batch), model.embed(real_batch)
    assert nodes.shape == (real_batch.num_nodes, 64)
    assert graphs.shape == (16, 64)
    assert torch.isfinite(graphs).all()


@pytest.mark.parametrize(("jk", "factor"), [("last", 1), ("concat", 6), ("max", 1), ("sum", 1)])
def test_jumping_knowledge_output_sizes(jk, factor, toy_batch):
    model = HuGNN("gin", num_layers=5, emb_dim=8, jk=jk).eval()
    assert model.out_dim == factor * 8
    with torch.no_grad():
        assert model(toy_batch).shape == (toy_batch.num_nodes, factor * 8)
        assert model.embed(toy_batch).shape == (5, factor * 8)


def test_concat_includes_input_embedding_and_every_layer(toy_batch):
    model = HuGNN("gcn", num_layers=2, emb_dim=4, jk="concat").eval()
    last = HuGNN("gcn", num_layers=2, emb_dim=4, jk="last").eval()
    last.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = model(toy_batch)
        x = toy_batch.x
        inputs = model.x_embedding1(x[:, 0]) + model.x_embedding2(x[:, 1])
        torch.testing.assert_close(out[:, :4], inputs)
        torch.testing.assert_close(out[:, -4:], last(toy_batch))


def test_gin_layer_adds_self_loops_of_bond_type_4():
    """'CO': each atom sums itself and its neighbour, each plus its bond's embedding."""
    torch.manual_seed(0)
    model = HuGNN("gin", num_layers=1, emb_dim=6).eval()
    graph = _batch(["CO"])
    conv = model.gnns[0]
    with torch.no_grad():
        h = model.x_embedding1(graph.x[:, 0]) + model.x_embedding2(graph.x[:, 1])
        e1, e2 = conv.edges.edge_embedding1.weight, conv.edges.edge_embedding2.weight
        single, loop = e1[0] + e2[0], e1[4] + e2[0]
        expected = torch.stack(
            [
                conv.mlp(h[1] + single + h[0] + loop),
                conv.mlp(h[0] + single + h[1] + loop),
            ]
        )
        torch.testing.assert_close(conv(h, graph.edge_index, graph.edge_attr), expected)


def test_gcn_layer_normalises_by_degree_with_self_loops():
    torch.manual_seed(0)
    model = HuGNN("gcn", num_layers=1, emb_dim=5).eval()
    graph = _batch(["CCO"])  # degrees with self loops: 2, 3, 2
    conv = model.gnns[0]
    with torch.no_grad():
        h = model.x_embedding1(graph.x[:, 0]) + model.x_embedding2(graph.x[:, 1])
        z = conv.linear(h)
        e1, e2 = conv.edges.edge_embedding1.weight, conv.edges.edge_embedding2.weight
        single, loop = e1[0] + e2[0], e1[4] + e2[0]
        deg = torch.tensor([2.0, 3.0, 2.0])
        neighbours = {0: [1], 1: [0, 2], 2: [1]}
        expected = torch.stack(
            [
                sum((z[j] + single) / (deg[i] * deg[j]).sqrt() for j in neighbours[i])
                + (z[i] + loop) / deg[i]
                for i in range(3)
            ]
        )
        torch.testing.assert_close(conv(h, graph.edge_index, graph.edge_attr), expected)


def test_single_atom_molecule_goes_through_every_architecture():
    batch = _batch(["C", "[Na+].[Cl-]", "*CC"])
    for arch in ["gin", *ARCHS]:
        out = HuGNN(arch, num_layers=2, emb_dim=8).eval().embed(batch)
        assert out.shape == (3, 8) and torch.isfinite(out).all(), arch


def test_bad_settings_are_model_errors():
    with pytest.raises(ModelError, match="unknown GNN type 'gine'"):
        HuGNN("gine")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="num_layers must be at least 1"):
        HuGNN("gin", num_layers=0)
    with pytest.raises(ModelError, match="unknown jk mode 'mean'"):
        HuGNN("gin", jk="mean")  # type: ignore[arg-type]


def test_repr_shows_settings():
    text = str(HuGNN("gat", num_layers=3, emb_dim=12, jk="concat", dropout=0.2))
    for part in ("gat", "num_layers=3", "emb_dim=12", "jk=concat", "dropout=0.2"):
        assert part in text
