"""Assemble what a weighting strategy needs from names: encoder, objectives, corpus, task.

One place turns ``--dataset bbbp --encoder gcn_supervised_contextpred --objectives
attr_mask,edge_pred,motif --corpus task`` into objects, for the CLI, the baselines and the
harness alike.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from tapweight.data.registry import get_dataset_info
from tapweight.downstream.task import DownstreamTask
from tapweight.errors import ConfigError

if TYPE_CHECKING:
    from tapweight.data.user_specs import MoleculeFileSpec, TextFileSpec
    from tapweight.objectives import Objectives
    from tapweight.pretrain import PretrainConfig

__all__ = ["Components", "build_components", "TASK_CORPUS"]

TASK_CORPUS = "task"
"""Corpus name meaning "the downstream task's own training inputs" (task-adaptive pretraining)."""


@dataclass
class Components:
    encoder: nn.Module
    objectives: Objectives
    corpus: Any
    corpus_collate: Callable | None
    task: DownstreamTask
    domain: str
    tokenizer: Any = None

    def pretrained_copy(
        self, weights: Sequence[float] | None, config: PretrainConfig, seed: int
    ) -> tuple[nn.Module, int]:
        """A copy of the starting encoder continued-pretrained with ``weights`` (None: the copy
        untouched), and the forward/backward passes it took.

        The one "pretrain with these weights" of every search trial, the protocol and the demo:
        encoder and objective heads are copied, so calls never leak into each other, and the
        seed fixes both the batches and the objectives' randomness.
        """
        import torch

        from tapweight.pretrain import continued_pretrain

        encoder = copy.deepcopy(self.encoder)
        if weights is None:
            return encoder, 0
        torch.manual_seed(seed)
        trained = continued_pretrain(
            encoder,
            copy.deepcopy(self.objectives),
            weights,
            self.corpus,
            config.model_copy(update={"seed": seed}),
            self.corpus_collate,
        )
        return encoder, trained.forward_backward_passes


def _molecule_corpus(corpus: str, task: DownstreamTask, data_dir, max_corpus, seed):
    from tapweight.data.molecules import MoleculeDataset

    if corpus == TASK_CORPUS:
        return task.train  # labels are present but no objective reads them
    return MoleculeDataset(corpus, data_dir, max_molecules=max_corpus, seed=seed)


def _text_corpus(corpus: str, text_task, tokenizer, data_dir, max_corpus, seed, max_length):
    import numpy as np

    from tapweight.data.text_tasks import load_text_task
    from tapweight.data.tokenized import tokenize_texts
    from tapweight.data.user_files import read_lines

    if corpus == TASK_CORPUS:
        texts = text_task.unlabeled
    elif corpus.endswith((".txt", ".txt.gz")):  # a file of text lines
        from tapweight.data.user_specs import resolve_user_path

        texts = read_lines(resolve_user_path(corpus, data_dir))
    else:
        texts = load_text_task(corpus, data_dir, seed).unlabeled
    if max_corpus is not None and max_corpus < len(texts):
        picked = np.sort(np.random.default_rng(seed).choice(len(texts), max_corpus, replace=False))
        texts = [texts[i] for i in picked]
    return tokenize_texts(texts, tokenizer, max_length)


def _user_task(dataset: MoleculeFileSpec | TextFileSpec, data_dir, seed: int) -> tuple[str, Any]:
    """The domain and the task (a MoleculeDataset's split or a TextTask) of a user file."""
    from tapweight.data.user_datasets import inspect_user_dataset, load_user_text_task
    from tapweight.data.user_specs import MoleculeFileSpec

    if isinstance(dataset, MoleculeFileSpec):
        from tapweight.data.molecules import MoleculeDataset
        from tapweight.data.user_datasets import load_molecule_table

        inspect_user_dataset(dataset, data_dir, seed).log()  # refuses what a run cannot use
        molecules = MoleculeDataset(load_molecule_table(dataset, data_dir))
        kind = "scaffold" if dataset.split.startswith("column:") else dataset.split
        return "molecule", DownstreamTask.from_molecules(molecules, kind, seed)  # type: ignore[arg-type]
    return "text", load_user_text_task(dataset, data_dir, seed)


def build_components(
    dataset: str | MoleculeFileSpec | TextFileSpec,
    encoder: str,
    objectives: list[str],
    corpus: str = TASK_CORPUS,
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "scaffold",
    seed: int = 0,
    max_corpus: int | None = None,
    max_length: int = 128,
    encoder_options: dict[str, int] | None = None,
) -> Components:
    """Load the task, the encoder and the corpus, and build the objectives for them.

    With no objectives (plain finetuning) no corpus is loaded and ``corpus`` is None.
    ``encoder_options`` size a molecule encoder (``num_layers``, ``emb_dim``). ``dataset`` is a
    registry key or a user file's mapping (:mod:`tapweight.data.user_specs`), whose own split
    replaces ``split``.
    """
    from tapweight.models.registry import build_encoder, encoder_domain
    from tapweight.objectives import Objectives, build_objectives

    user_task: Any = None
    if isinstance(dataset, str):
        info = get_dataset_info(dataset)
        if info.kind != "labeled":
            raise ConfigError(
                f"{dataset!r} is an unlabeled corpus; the downstream task needs labels"
            )
        domain: str = info.domain
        name = dataset
    else:
        domain, user_task = _user_task(dataset, data_dir, seed)
        name = dataset.name
    if encoder_domain(encoder) != domain:
        raise ConfigError(f"encoder {encoder!r} does not fit the {domain} dataset {name!r}")
    if encoder_options and domain != "molecule":
        raise ConfigError("encoder_options size molecule encoders only")
    model = build_encoder(encoder, data_dir, **(encoder_options or {}))
    if domain == "molecule":
        from tapweight.data.molecules import MoleculeDataset

        if user_task is not None:
            task = user_task
        else:
            molecules = MoleculeDataset(name, data_dir)
            task = DownstreamTask.from_molecules(molecules, split, seed)  # type: ignore[arg-type]
        if not objectives:
            return Components(model, Objectives(), None, None, task, domain)
        built = build_objectives(objectives, model, domain)
        unlabeled = _molecule_corpus(corpus, task, data_dir, max_corpus, seed)
        return Components(model, built, unlabeled, None, task, domain)
    from tapweight.artifacts import text_folder
    from tapweight.data.text_tasks import load_text_task
    from tapweight.data.tokenized import text_collate
    from tapweight.models.text import load_tokenizer

    saved = text_folder(encoder) if encoder != "tiny-bert" else None
    tokenizer = load_tokenizer("minilm" if encoder == "tiny-bert" else saved or encoder)
    text_task = user_task if user_task is not None else load_text_task(name, data_dir, seed)
    task = DownstreamTask.from_text(text_task, tokenizer, max_length)
    collate = text_collate(tokenizer)
    if not objectives:
        return Components(model, Objectives(), None, collate, task, domain, tokenizer)
    built = build_objectives(objectives, model, domain, tokenizer)
    unlabeled = _text_corpus(corpus, text_task, tokenizer, data_dir, max_corpus, seed, max_length)
    return Components(model, built, unlabeled, collate, task, domain, tokenizer)
