"""One contract suite for every objective, subclassed per objective (Optuna's sampler tests style).

Each objective, on real data: its loss is finite, it sends gradients into the encoder, and it
drops when optimized alone for a few dozen steps on a small fixed batch set (measured with the
same random corruption before and after, so the drop is learning, not noise).
"""

from __future__ import annotations

import copy

import pytest
import torch

from tapweight.errors import ConfigError
from tapweight.objectives import OBJECTIVES, build_objectives, objective_names

pytestmark = pytest.mark.dataset


@pytest.fixture(scope="module")
def molecule_batches(data_dir):
    from torch_geometric.loader import DataLoader

    from tapweight.data import MoleculeDataset

    corpus = MoleculeDataset("zinc250k_subset_jtvae", data_dir, max_molecules=64, seed=0)
    return list(DataLoader(corpus, batch_size=32))


@pytest.fixture(scope="module")
def labeled_molecule_batches(data_dir):
    """BBBP's training molecules with their labels: the corpus ``planted_task`` needs."""
    from torch_geometric.loader import DataLoader

    from tapweight.data import MoleculeDataset

    return list(DataLoader(MoleculeDataset("bbbp", data_dir)[:64], batch_size=32))


@pytest.fixture(scope="module")
def text_batches(data_dir):
    from tapweight.data.text_tasks import load_text_task
    from tapweight.data.tokenized import text_collate, tokenize_texts
    from tapweight.models import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    texts = load_text_task("tapt_citation_intent", data_dir).unlabeled[:16]
    items = tokenize_texts(texts, tokenizer, max_length=48)
    collate = text_collate(tokenizer)
    return tokenizer, [collate([items[i] for i in range(j, j + 8)]) for j in (0, 8)]


class ObjectiveContract:
    """Subclasses set ``name``; the fixtures below provide encoder and batches per domain."""

    name: str
    steps = 30
    lr = 1e-3
    min_relative_drop = 0.1
    molecules = "molecule_batches"

    @pytest.fixture
    def setup(self, request):
        domain = OBJECTIVES[self.name].domain
        torch.manual_seed(0)
        if domain == "molecule":
            from tapweight.models import load_pretrained_gnn

            encoder = load_pretrained_gnn("gcn_contextpred", request.getfixturevalue("data_dir"))
            batches, tokenizer = request.getfixturevalue(self.molecules), None
        else:
            from tapweight.models import tiny_text_encoder

            encoder = tiny_text_encoder(hidden=64)
            tokenizer, batches = request.getfixturevalue("text_batches")
        (objective,) = build_objectives([self.name], encoder, domain, tokenizer)
        return encoder, objective, batches

    @staticmethod
    def _mean_loss(encoder, objective, batches, seed: int = 1234) -> float:
        torch.manual_seed(seed)  # identical corruption each time it is measured
        with torch.no_grad():
            return sum(objective.loss(encoder, b).item() for b in batches) / len(batches)

    def test_loss_is_finite_scalar(self, setup):
        encoder, objective, batches = setup
        loss = objective.loss(encoder, batches[0])
        assert loss.dim() == 0 and torch.isfinite(loss)

    def test_gradients_reach_encoder_and_head(self, setup):
        encoder, objective, batches = setup
        objective.loss(encoder, batches[0]).backward()
        encoder_grads = [p.grad for p in encoder.parameters() if p.grad is not None]
        assert encoder_grads and any(g.abs().sum() > 0 for g in encoder_grads)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.parameters())

    def test_loss_drops_when_optimized_alone(self, setup):
        encoder, objective, batches = setup
        encoder.train()
        objective.train()
        before = self._mean_loss(encoder, objective, batches)
        optimizer = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=self.lr)
        torch.manual_seed(0)
        for step in range(self.steps):
            loss = objective.loss(encoder, batches[step % len(batches)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after = self._mean_loss(encoder, objective, batches)
        assert after < (1 - self.min_relative_drop) * before, (
            f"{self.name}: loss {before:.4f} -> {after:.4f}"
        )

    def test_repr_names_the_objective(self, setup):
        _, objective, _ = setup
        assert repr(objective).startswith(type(objective).__name__) and self.name in repr(objective)


class TestAttributeMasking(ObjectiveContract):
    name = "attr_mask"


class TestEdgePrediction(ObjectiveContract):
    name = "edge_pred"


class TestGraphCL(ObjectiveContract):
    name = "graphcl"
    steps = 60
    min_relative_drop = 0.05  # contrastive losses fall slowly from log(batch size)


class TestMotifPrediction(ObjectiveContract):
    name = "motif"


class TestPlantedNoise(ObjectiveContract):
    name = "planted_noise"
    steps = 60
    lr = 3e-3
    min_relative_drop = 0.05  # memorizing coin flips: a binary loss starting near log(2)


class TestPlantedTask(ObjectiveContract):
    name = "planted_task"
    molecules = "labeled_molecule_batches"


def test_planted_noise_labels_are_fixed_fair_coins_per_molecule():
    from tapweight.objectives.planted import noise_label

    smiles = [f"C{'C' * i}O" for i in range(400)]
    labels = [noise_label(s) for s in smiles]
    assert labels == [noise_label(s) for s in smiles] and set(labels) == {0.0, 1.0}
    assert 0.4 < sum(labels) / len(labels) < 0.6
    assert labels != [noise_label(s, seed=1) for s in smiles]


def test_planted_task_needs_the_tasks_own_labels(molecule_batches):
    from tapweight.models import HuGNN

    (objective,) = build_objectives(["planted_task"], HuGNN("gin", 1, 8), "molecule")
    with pytest.raises(ConfigError, match="corpus: task"):
        objective.loss(HuGNN("gin", 1, 8), molecule_batches[0])


class TestMaskedLanguageModeling(ObjectiveContract):
    name = "mlm"


class TestSimCSE(ObjectiveContract):
    name = "simcse"


class TestSentenceOrderPrediction(ObjectiveContract):
    name = "sop"
    steps = 60
    lr = 3e-3
    min_relative_drop = 0.05  # a binary loss starting near log(2)


def test_every_objective_has_a_contract_test():
    tested = {cls.name for cls in ObjectiveContract.__subclasses__()}
    assert tested == set(OBJECTIVES)


def test_domains_are_split_as_documented():
    assert set(objective_names("molecule")) == {
        "attr_mask", "edge_pred", "graphcl", "motif", "planted_noise", "planted_task",
    }  # fmt: skip
    assert set(objective_names("text")) == {"mlm", "simcse", "sop"}


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["attr_mask", "nope"], "unknown molecule objective 'nope'"),
        (["mlm"], "unknown molecule objective 'mlm'"),
        ([], "at least one objective"),
        (["motif", "motif"], "distinct"),
    ],
)
def test_bad_objective_lists_are_refused(names, message):
    from tapweight.models import HuGNN

    with pytest.raises(ConfigError, match=message):
        build_objectives(names, HuGNN("gin", num_layers=1, emb_dim=8), "molecule")


def test_motif_objective_explains_missing_labels(molecule_batches):
    from tapweight.models import HuGNN

    encoder = HuGNN("gin", num_layers=1, emb_dim=8)
    (objective,) = build_objectives(["motif"], encoder, "molecule")
    batch = copy.copy(molecule_batches[0])
    del batch.motifs
    with pytest.raises(ConfigError, match="motifs=True"):
        objective.loss(encoder, batch)
