"""Dataset name -> what the rest of gm needs to know about it: shape, value range, classes, factors,
domain splits, evaluator, and how to load it.

Adding a dataset is one module that loads it into an :class:`~gm.data.base.ImageDataset` and
registers its :class:`DatasetSpec` (with :func:`register_dataset` or the :func:`dataset` decorator),
plus one line in ``_BUILTIN`` below when it ships with gm. Metrics, the CLI and the batchers read
the table instead of comparing dataset names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gm.errors import GMError

if TYPE_CHECKING:  # the table must stay importable without loading any dataset code
    from gm.data.base import ImageDataset

SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """Everything gm knows about a dataset without loading it."""

    name: str
    description: str                       # one line, shown by `python -m gm datasets`
    image_shape: tuple[int, int, int]      # C, H, W
    max_value: int                         # uint8 value of "fully on": 1 for binary, 255 for grey
    loader: str | Callable[..., ImageDataset]  # "module:function" (imported on first load) or a function
    value_range: str = ""
    classes: tuple[str, ...] = ()          # class names, in label order
    class_factor: str = ""                 # what a class is ("digit", "shape")
    factors: tuple[str, ...] = ()          # ground-truth factor names, in factor_classes column order
    factor_sizes: tuple[int, ...] = ()     # how many values each factor takes
    # split name -> domain names. A split bins one factor (or the class) into equal consecutive
    # ranges of its value index: dSprites' "scale" split puts indices 0-2 in "small", 3-5 in "large".
    domain_splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    evaluator: str | None = None           # checkpoints/evaluators/<evaluator>.safetensors
    coverage: str | None = None            # the evaluator's prediction whose histogram is mode coverage
    splits: tuple[str, ...] = ("train",)   # which of train / test the loader can give
    # "module:function" (or a function) ``(dataset, index, by, to) -> uint8 N x C x H x W``: the true
    # counterparts of images `index` in domain `to` of split `by` (gm.data.domains.counterparts).
    # Only datasets generated from known factors have them; it is what lets translation be scored
    # against ground truth instead of a classifier's opinion alone.
    counterpart: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        # Read-only, so a spec shared by every caller cannot be changed by one of them.
        object.__setattr__(self, "domain_splits",
                           MappingProxyType({k: tuple(v) for k, v in dict(self.domain_splits).items()}))
        problem = self._problem()
        if problem:
            raise GMError(f"Dataset spec '{self.name}' is invalid: {problem}.")

    def _problem(self) -> str | None:
        if len(self.image_shape) != 3:
            return f"image_shape must be (C, H, W), got {self.image_shape}"
        if self.max_value < 1:
            return "max_value must be at least 1"
        if "train" not in self.splits or set(self.splits) - set(SPLITS):
            return f"splits must include train and be among {', '.join(SPLITS)}"
        if len(self.factor_sizes) != len(self.factors):
            return "factor_sizes needs one size per factor"
        for split, domains in self.domain_splits.items():
            if split not in self.factors and split != self.class_factor:
                return f"domain split '{split}' must name a factor or the class factor"
            if len(domains) < 2 or len(set(domains)) != len(domains):
                return f"domain split '{split}' needs two or more distinct domain names"
            if len(domains) > self._size(split):
                return f"domain split '{split}' has more domains than '{split}' has values"
        if self.coverage and not self.classes:
            return "coverage needs class names"
        return None

    def _size(self, factor: str) -> int:
        if factor in self.factors:
            return self.factor_sizes[self.factors.index(factor)]
        return len(self.classes)

    def load(self, data_dir: Any = None, *, train: bool = True, **kwargs: Any) -> ImageDataset:
        """Load the dataset (the train split unless train=False)."""
        if not train and "test" not in self.splits:
            raise GMError(f"The {self.name} dataset has no test split; use its train split.")
        if "test" in self.splits:
            kwargs["train"] = train
        ds = _resolve(self.loader)(data_dir, **kwargs)
        if ds.name != self.name or tuple(ds.image_shape) != tuple(self.image_shape):
            raise GMError(f"The {self.name} loader returned '{ds.name}' images of shape {tuple(ds.image_shape)}, "
                          f"not the registered {tuple(self.image_shape)}; fix the loader or its spec.")
        return ds

    def domains(self, by: str) -> tuple[str, ...]:
        """The domain names of split `by` (a one-sentence GMError names the splits there are)."""
        if by not in self.domain_splits:
            have = ", ".join(self.domain_splits) or "none"
            raise GMError(f"The {self.name} dataset has no domain split '{by}'; its splits: {have}.")
        return self.domain_splits[by]

    def counterpart_fn(self) -> Callable[..., Any] | None:
        """The counterpart hook as a function (imported on first use), or None when there is none."""
        return None if self.counterpart is None else _resolve(self.counterpart)

    def domain_index(self, dataset: ImageDataset, by: str) -> Any:
        """int64 N tensor: the index (into domains(by)) of each image's domain."""
        if by in self.factors:
            if dataset.factor_classes is None or by not in dataset.factor_names:
                raise GMError(f"This {self.name} dataset has no '{by}' factor values to split by.")
            values = dataset.factor_classes[:, dataset.factor_names.index(by)]
        else:
            if dataset.labels is None:
                raise GMError(f"This {self.name} dataset has no labels to split by {by}.")
            values = dataset.labels
        return self.bin_domains(values, by)

    def bin_domains(self, values: Any, by: str) -> Any:
        """Domain indices (into domains(by)) of value indices of the split's factor or class."""
        return values.long() * len(self.domains(by)) // self._size(by)


def _resolve(loader: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(loader):
        return loader
    module, _, name = loader.partition(":")
    return getattr(importlib.import_module(module), name)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the table. A second spec under a taken name is an error, unless it comes
    from the same loader definition (a re-imported module or a re-run notebook cell): then it replaces it."""
    old = DATASETS.get(spec.name)
    if old is not None and not _same_loader(old.loader, spec.loader):
        raise GMError(f"A dataset named '{spec.name}' is already registered; choose another name.")
    DATASETS[spec.name] = spec
    return spec


def _same_loader(a: str | Callable[..., Any], b: str | Callable[..., Any]) -> bool:
    def where(loader: str | Callable[..., Any]) -> str:
        return loader if isinstance(loader, str) else f"{loader.__module__}:{loader.__qualname__}"
    return where(a) == where(b)


def unregister_dataset(name: str) -> None:
    """Remove a dataset from the table (tests and notebooks that register throwaway ones)."""
    DATASETS.pop(name, None)


def dataset(name: str, **fields: Any) -> Callable[[Callable[..., ImageDataset]], Callable[..., ImageDataset]]:
    """Decorator: register the decorated loader ``(data_dir=None, **kwargs) -> ImageDataset`` as `name`."""
    def wrap(loader: Callable[..., ImageDataset]) -> Callable[..., ImageDataset]:
        register_dataset(DatasetSpec(name=name, loader=loader, **fields))
        return loader
    return wrap


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise GMError(f"Unknown dataset '{name}'; use one of {', '.join(DATASETS)}.")
    return DATASETS[name]


def dataset_names() -> tuple[str, ...]:
    """Registered dataset names, in registration order."""
    return tuple(DATASETS)


class SpecView(Mapping[str, Any]):
    """A live, read-only name -> value table of one spec field, for datasets where it is set.

    Keeps old module-level tables (CLASSIFIER_FOR, COVERAGE_OF) importable while the registry stays
    the one place the knowledge lives, including datasets registered after import.
    """

    def __init__(self, get: Callable[[DatasetSpec], Any]) -> None:
        self._get = get

    def __getitem__(self, name: str) -> Any:
        value = self._get(DATASETS[name]) if name in DATASETS else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (n for n, s in list(DATASETS.items()) if self._get(s) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


# The datasets that ship with gm register themselves when their module is imported.
_BUILTIN = ("gm.data.dsprites", "gm.data.mnist", "gm.data.mnist_style")
for _module in _BUILTIN:
    importlib.import_module(_module)
