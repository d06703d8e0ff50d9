"""The experiment spec: one YAML/JSON file says what to compare, on what, for how much compute.

Everything is checked before any data is loaded or any Ray worker starts: unknown datasets,
encoders, objectives and strategies are named, and a budget too small for a strategy says the
minimum. ``tapweight spec schema`` prints the JSON schema (kept in
``harness/experiment.schema.json``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from baselines import REFERENCE_STRATEGY
from tapweight.data.registry import Domain
from tapweight.data.user_specs import MoleculeFileSpec, TextFileSpec, user_dataset_domain
from tapweight.downstream.finetuning import FinetuneConfig
from tapweight.errors import ConfigError, TapWeightError, describe_validation_error
from tapweight.pretrain import PretrainConfig

__all__ = [
    "ExperimentSpec",
    "StrategySpec",
    "ProtocolSpec",
    "ResourcesSpec",
    "TuneSpec",
    "SpecLimits",
    "DatasetEntry",
    "load_spec",
    "parse_spec",
    "validate_spec",
    "SCHEMA_PATH",
]

SCHEMA_PATH = Path(__file__).with_name("experiment.schema.json")
RESERVED_SETTINGS = ("seed", "checkpoint_dir")
"""Strategy arguments the harness sets itself, per trial."""
ENCODER_OPTION_MAX = {"num_layers": 64, "emb_dim": 8192}
MOLECULE_FILE_SUFFIXES = (".txt", ".csv", ".gz", ".smi")
"""A molecule corpus with one of these suffixes (or a '/') is a SMILES file, not a key."""
TEXT_FILE_SUFFIXES = (".txt", ".txt.gz")
"""A text corpus with one of these suffixes is a file of text lines, one example per line."""
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # numpy's seed range
# Every spec model refuses inf and NaN: JSON carries them (1e999, Infinity) but no run can.
_SPEC_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class SpecLimits:
    """Caps on what one spec may ask for, so that an accident is refused before it runs; the
    service takes them from its settings (``parse_spec(data, limits)``)."""

    seeds: int = 100
    trials: int = 1000
    """dataset × strategy × seed cells of one experiment"""
    cpu: float = 64
    """per trial"""
    gpu: float = 8
    """per trial"""


def _limits(info: ValidationInfo) -> SpecLimits:
    return (info.context or {}).get("limits") or SpecLimits()


def _dataset_kind(value: Any) -> str:
    return "key" if isinstance(value, str) else user_dataset_domain(value)


DatasetEntry = Annotated[
    Annotated[str, Tag("key")]
    | Annotated[MoleculeFileSpec, Tag("molecule")]
    | Annotated[TextFileSpec, Tag("text")],
    Discriminator(_dataset_kind),
]
"""A registry key, or a mapping of the user's own file (:mod:`tapweight.data.user_specs`)."""


def dataset_name(entry: str | MoleculeFileSpec | TextFileSpec) -> str:
    return entry if isinstance(entry, str) else entry.name


def _dataset_domain(entry: str | MoleculeFileSpec | TextFileSpec) -> Domain:
    from tapweight.data.registry import get_dataset_info

    if isinstance(entry, str):
        return get_dataset_info(entry).domain
    return "molecule" if isinstance(entry, MoleculeFileSpec) else "text"


class StrategySpec(BaseModel):
    """One weighting strategy with its settings; a bare string in YAML means no settings."""

    model_config = _SPEC_CONFIG

    name: str = Field(description="e.g. tapweight, uniform, no_cp, single:motif, grid, optuna")
    settings: dict[str, Any] = Field(default_factory=dict)
    budget_pretrain_steps: int | None = Field(
        None, ge=1, description="overrides the experiment's search budget for this strategy"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("settings")
    @classmethod
    def _not_reserved(cls, settings: dict[str, Any]) -> dict[str, Any]:
        for key in RESERVED_SETTINGS:
            if key in settings:
                raise ValueError(f"{key!r} is set by the harness for each trial; remove it")
        return settings

    @property
    def label(self) -> str:
        """Name used in reports; settings make two entries of one strategy distinct."""
        if not self.settings:
            return self.name
        shown = ",".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        return f"{self.name}[{shown}]"


class ProtocolSpec(BaseModel):
    """The one fair protocol applied to every strategy's weights (and the unit of a trial)."""

    model_config = _SPEC_CONFIG

    pretrain: PretrainConfig = Field(
        default_factory=lambda: PretrainConfig(steps=100, lr=0.05, optimizer="sgd", progress=False),
        description="one continued-pretraining run: the final retraining and each search trial",
    )
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(progress=False))
    finetune_seeds: int = Field(
        1, ge=1, le=20, description="finetuning seeds per retrained encoder (scores averaged)"
    )


class ResourcesSpec(BaseModel):
    """What one trial asks of the cluster. ``gpu: auto`` means one GPU when the cluster has one."""

    model_config = _SPEC_CONFIG

    cpu: float = Field(1, gt=0)
    gpu: Literal["auto"] | float = Field(0.0)

    @field_validator("cpu")
    @classmethod
    def _cpu_cap(cls, value: float, info: ValidationInfo) -> float:
        if value > (cap := _limits(info).cpu):
            raise ValueError(f"{value:g} CPUs per trial is over the limit of {cap:g}; ask fewer")
        return value

    @field_validator("gpu")
    @classmethod
    def _gpu_range(cls, value: float | str, info: ValidationInfo) -> float | str:
        if value == "auto":
            return value
        if float(value) < 0:
            raise ValueError("must be >= 0 or 'auto'")
        if float(value) > (cap := _limits(info).gpu):
            raise ValueError(f"{value:g} GPUs per trial is over the limit of {cap:g}; ask fewer")
        return value


class TuneSpec(BaseModel):
    """How Ray Tune runs the trials."""

    model_config = _SPEC_CONFIG

    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(2, ge=0, description="retries of a failed trial from its checkpoint")

    @model_validator(mode="before")
    @classmethod
    def _no_runner_pruning(cls, value: Any) -> Any:
        if isinstance(value, dict) and ("asha" in value or "asha_grace_period" in value):
            raise ValueError(
                "asha is gone: early stopping is the strategy's own setting now, the same with "
                "and without Ray; give the optuna strategy `pruner: successive_halving` (ASHA) "
                "or `pruner: median` instead"
            )
        return value


class ExperimentSpec(BaseModel):
    """Which strategies to compare, on which data, from which encoder, for how much compute."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra={"title": "TapWeight experiment"}
    )

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    domain: Literal["molecule", "text"] | None = Field(
        None, description="inferred from the datasets when left out"
    )
    datasets: list[DatasetEntry] = Field(
        min_length=1,
        description="registry keys, or mappings of your own files (name, path or dataset_id, "
        "columns, task_type, split)",
    )
    split: Literal["scaffold", "random", "random_scaffold"] = Field(
        "scaffold", description="split of the registry's molecule datasets (a file has its own)"
    )
    encoder: str = Field(description="starting encoder (see `tapweight data list`)")
    encoder_options: dict[str, int] = Field(
        default_factory=dict, description="GNN size for random-init encoders: num_layers, emb_dim"
    )
    objectives: list[str] = Field(min_length=1)
    corpus: str = Field(
        "task",
        description="'task' (the task's own inputs), a dataset key of the domain, or a SMILES file",
    )
    max_corpus: int | None = Field(None, ge=2)
    strategies: list[StrategySpec] = Field(min_length=1)
    reference_strategy: str | None = Field(
        None,
        description="the strategy (its label) the report compares every other strategy "
        f"against; default: {REFERENCE_STRATEGY} when the spec runs it",
    )
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    budget_pretrain_steps: int = Field(
        1000, ge=1, description="search budget per strategy, in continued-pretraining steps"
    )
    budget_wall_clock_s: float | None = Field(
        None, gt=0, description="optional wall-clock cap per trial (the trial is stopped)"
    )
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)

    @field_validator("datasets")
    @classmethod
    def _known_labeled_datasets(cls, datasets: list[DatasetEntry]) -> list[DatasetEntry]:
        from tapweight.data.registry import DATASETS, get_dataset_info

        names = [dataset_name(entry) for entry in datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"datasets repeat: {names}")
        for entry in datasets:
            if not isinstance(entry, str):
                if entry.name in DATASETS:
                    raise ValueError(
                        f"{entry.name!r} is a registry dataset's key; name your file otherwise"
                    )
                continue
            info = _config_error_as_value(get_dataset_info, entry)
            if info.kind != "labeled":
                raise ValueError(
                    f"{entry!r} is an unlabeled corpus; a downstream task needs labels"
                )
        return datasets

    @field_validator("encoder_options")
    @classmethod
    def _known_encoder_options(cls, options: dict[str, int]) -> dict[str, int]:
        unknown = set(options) - {"num_layers", "emb_dim"}
        if unknown:
            raise ValueError(f"unknown encoder options {sorted(unknown)}; use num_layers, emb_dim")
        for key, value in options.items():
            if not 1 <= value <= ENCODER_OPTION_MAX[key]:
                raise ValueError(
                    f"{key} must be between 1 and {ENCODER_OPTION_MAX[key]}, got {value}"
                )
        return options

    @field_validator("encoder")
    @classmethod
    def _existing_weights_file(cls, encoder: str) -> str:
        from tapweight.models.registry import is_encoder_name

        if encoder.endswith(".pth") and not is_encoder_name(encoder):
            if not Path(encoder).is_file():
                raise ValueError(
                    f"{encoder!r} is no registered weight name and no such file exists; give "
                    "a weight name (`tapweight data list`) or the path of a .pth file"
                )
        return encoder

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, objectives: list[str]) -> list[str]:
        from tapweight.objectives import OBJECTIVES

        if len(set(objectives)) != len(objectives):
            raise ValueError(f"objectives repeat: {objectives}")
        for name in objectives:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
        return objectives

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds_within_limits(cls, seeds: list[int], info: ValidationInfo) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        limits = _limits(info)
        if len(seeds) > limits.seeds:
            raise ValueError(f"{len(seeds)} seeds is over the limit of {limits.seeds}; use fewer")
        # datasets and strategies come first, so they are validated by now (or absent if bad).
        trials = (
            len(seeds) * len(info.data.get("datasets", ())) * len(info.data.get("strategies", ()))
        )
        if trials > limits.trials:
            raise ValueError(
                f"{trials} trials (datasets × strategies × seeds) is over the limit of "
                f"{limits.trials} per experiment; use fewer seeds, strategies or datasets"
            )
        return seeds

    @field_validator("strategies")
    @classmethod
    def _distinct_labels(cls, strategies: list[StrategySpec]) -> list[StrategySpec]:
        labels = [s.label for s in strategies]
        if len(set(labels)) != len(labels):
            raise ValueError(f"strategies repeat: {labels}")
        return strategies

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ExperimentSpec:
        """Checks across fields, each problem raised at its own field's location (so the API
        and the CLI name ``strategies.1``, not the whole spec). With ``inspect_files`` in the
        context, the user's own dataset files are read and checked too."""
        from tapweight.models.registry import encoder_domain
        from tapweight.objectives import OBJECTIVES

        domains = {_dataset_domain(entry) for entry in self.datasets}
        if len(domains) > 1:
            _raise([(("datasets",), f"datasets mix domains {sorted(domains)}; one experiment, "
                     "one domain")])  # fmt: skip
        domain = domains.pop()
        if self.domain is not None and self.domain != domain:
            _raise([(("domain",), f"domain is {self.domain!r} but the datasets are {domain} "
                     "datasets")])  # fmt: skip
        self.domain = domain
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if (info.context or {}).get("inspect_files"):
            problems += _file_problems(self.datasets)
        encoder = _config_error_as_value(encoder_domain, self.encoder)
        if encoder != domain:
            problems.append(
                (("encoder",), f"{self.encoder!r} is a {encoder} encoder, not {domain}")
            )
        if problem := _corpus_problem(self.corpus, domain):
            problems.append((("corpus",), problem))
        for index, name in enumerate(self.objectives):
            if OBJECTIVES[name].domain != domain:
                message = f"{name!r} is for {OBJECTIVES[name].domain}, not {domain}"
                problems.append((("objectives", index), message))
        for index, entry in enumerate(self.strategies):
            if problem := self._strategy_problem(entry):
                problems.append((("strategies", index), problem))
        labels = [entry.label for entry in self.strategies]
        if self.reference_strategy is not None and self.reference_strategy not in labels:
            problems.append(
                (("reference_strategy",), f"{self.reference_strategy!r} is not one of the "
                 f"strategies ({', '.join(labels)})")
            )  # fmt: skip
        if problems:
            _raise(problems)
        return self

    def _strategy_problem(self, entry: StrategySpec) -> str | None:
        from baselines import make_strategy

        try:
            strategy = make_strategy(entry.name, **entry.settings)
        except ConfigError as error:
            return str(error)
        if problem := strategy.objectives_problem(self.objectives):
            return problem
        budget = self.budget_for(entry)
        needed = strategy.minimum_budget(len(self.objectives), budget)
        if budget.total_pretrain_steps < needed:
            return (
                f"needs at least {needed} pretraining steps with {len(self.objectives)} "
                f"objectives and {self.protocol.pretrain.steps} steps per run; the budget is "
                f"{budget.total_pretrain_steps} (raise budget_pretrain_steps)"
            )
        return None

    @property
    def dataset_names(self) -> list[str]:
        """Each dataset's name: its registry key, or the name of the user's file."""
        return [dataset_name(entry) for entry in self.datasets]

    def dataset_entry(self, name: str) -> str | MoleculeFileSpec | TextFileSpec:
        """What build_components takes for dataset ``name``."""
        for entry in self.datasets:
            if dataset_name(entry) == name:
                return entry
        raise ConfigError(f"no dataset {name!r} in the spec")

    def budget_for(self, entry: StrategySpec):
        """The :class:`~baselines.Budget` one strategy searches with (same runs as the protocol)."""
        from baselines import Budget

        return Budget(
            total_pretrain_steps=entry.budget_pretrain_steps or self.budget_pretrain_steps,
            pretrain=self.protocol.pretrain.model_copy(update={"progress": False}),
            finetune=self.protocol.finetune.model_copy(update={"progress": False}),
        )

    @property
    def reference(self) -> str | None:
        """The strategy the others are compared against, if the spec runs it."""
        if self.reference_strategy is not None:
            return self.reference_strategy
        labels = [entry.label for entry in self.strategies]
        return REFERENCE_STRATEGY if REFERENCE_STRATEGY in labels else None

    def strategy(self, label: str) -> StrategySpec:
        for entry in self.strategies:
            if entry.label == label:
                return entry
        raise ConfigError(f"no strategy {label!r} in the spec")

    def spec_hash(self) -> str:
        """Content hash of the normalized spec: results from another spec are refused on resume."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _file_problems(
    datasets: list[str | MoleculeFileSpec | TextFileSpec],
) -> list[tuple[tuple[str | int, ...], str]]:
    """Each user file's first problem (what a trial's load would refuse), at its entry."""
    import logging

    from tapweight.data.user_datasets import inspect_user_dataset

    problems: list[tuple[tuple[str | int, ...], str]] = []
    for index, entry in enumerate(datasets):
        if isinstance(entry, str):
            continue
        try:
            found = inspect_user_dataset(entry)
        except TapWeightError as error:
            problems.append((("datasets", index), str(error)))
            continue
        for warning in found.warnings:
            logging.getLogger("harness.spec").warning("%s", warning)
    return problems


def _corpus_problem(corpus: str, domain: Domain) -> str | None:
    """Why ``corpus`` cannot be read for a ``domain`` experiment (checked without reading it)."""
    from tapweight.data.registry import DATASETS, dataset_keys

    if corpus == "task":
        return None
    if corpus in DATASETS:
        found = DATASETS[corpus].domain
        return None if found == domain else f"{corpus!r} is a {found} dataset, not {domain}"
    if domain == "molecule" and (corpus.endswith(MOLECULE_FILE_SUFFIXES) or "/" in corpus):
        return None if Path(corpus).is_file() else f"the SMILES file {corpus!r} does not exist"
    if domain == "text" and corpus.endswith(TEXT_FILE_SUFFIXES):
        return None if Path(corpus).is_file() else f"the text file {corpus!r} does not exist"
    files = (
        f", or a SMILES file ({', '.join(MOLECULE_FILE_SUFFIXES)})"
        if domain == "molecule"
        else f", or a file of text lines ({', '.join(TEXT_FILE_SUFFIXES)})"
    )
    return (
        f"unknown corpus {corpus!r}; use 'task', a {domain} dataset key "
        f"({', '.join(dataset_keys(domain))}){files}"
    )


def _raise(problems: list[tuple[tuple[str | int, ...], str]]) -> NoReturn:
    """One validation error with an entry per problem, each at its field's location."""
    raise ValidationError.from_exception_data(
        "ExperimentSpec",
        [
            InitErrorDetails(
                type=PydanticCustomError("spec", "{problem}", {"problem": message}),
                loc=loc,
                input=None,
            )
            for loc, message in problems
        ],
    )


def _config_error_as_value(function, argument):
    """Registry lookups raise our own errors; pydantic needs ValueError to name the field."""
    try:
        return function(argument)
    except TapWeightError as error:
        raise ValueError(str(error)) from None


def validate_spec(
    data: Any, limits: SpecLimits | None = None, inspect_files: bool = True
) -> ExperimentSpec:
    """Validate a spec within ``limits`` (default :class:`SpecLimits`); raises pydantic's
    ValidationError, whose ``loc`` the service reports. ``inspect_files`` reads and checks
    the user's own dataset files (a finished run's spec no longer needs them)."""
    context = {"limits": limits or SpecLimits(), "inspect_files": inspect_files}
    return ExperimentSpec.model_validate(data, context=context)


def parse_spec(
    data: Any, limits: SpecLimits | None = None, inspect_files: bool = True
) -> ExperimentSpec:
    """Validate a spec from parsed YAML/JSON; :class:`ConfigError` lists every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"an experiment spec is a mapping, got {type(data).__name__}")
    try:
        return validate_spec(data, limits, inspect_files)
    except ValidationError as error:
        message = describe_validation_error(error, separator="\n", unnamed=None)
        raise ConfigError("invalid experiment spec:\n" + message) from None


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read a ``.yaml``/``.yml``/``.json`` spec file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML/JSON: {error}") from None
    return parse_spec(data)


def json_schema() -> dict[str, Any]:
    return ExperimentSpec.model_json_schema()
