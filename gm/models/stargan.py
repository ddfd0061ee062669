"""StarGAN (Choi et al. 2018) as a model object: one generator for every domain of a split.

G takes an image and the target domain (a one-hot vector tiled as extra input channels); D gives a
real/fake patch map and the domain logits.

With ``config.mask_split`` (the paper's *mask vector*), the model learns two label sets at once, as
StarGAN learns CelebA's attributes and RaFD's expressions from two datasets that each know only
their own labels: the condition is [first set's one-hot | second set's one-hot | mask], where the
mask (a one-hot of which set the label comes from) tells G which part to read and the other part is
zero; D's domain head has one logit per domain of both sets, and only the known set's part is
trained. ``domains`` then lists both sets' domains; a translation stays within a set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gm.errors import GMError
from gm.models.base import GenerativeModel, Translates, domain_index
from gm.models.translation_nets import ResnetGenerator, StarDiscriminator


class StarGANModel(GenerativeModel, Translates):
    """generator = G(x, c), discriminator = D(x) -> (patch map, domain logits)."""

    image_range = "signed"

    def build(self) -> None:
        c, d = self.config, self.data
        self.label_sets = self._label_sets()
        names = [n for _, set_names in self.label_sets for n in set_names]
        if len(set(names)) != len(names):
            raise GMError(f"The label sets {' and '.join(s for s, _ in self.label_sets)} share domain names; "
                          f"the mask vector needs distinct ones.")
        ch, size = d.image_shape[0], d.image_shape[1]
        self.generator = ResnetGenerator(ch, c.width, c.n_blocks, cond_channels=self.condition_size,
                                         variant="stargan")
        self.discriminator = StarDiscriminator(ch, size, len(names), c.width)

    def _label_sets(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(split, domain names) of each label set: the config's split, and the mask vector's second one."""
        first = (str(self.config.domain_split()), tuple(self.data.domains))
        second = getattr(self.config, "mask_split", "")
        if not second:
            return (first,)
        from gm.data.registry import get_dataset_spec
        return (first, (second, tuple(get_dataset_spec(self.data.dataset).domains(second))))

    @property
    def uses_mask(self) -> bool:
        return len(self.label_sets) > 1

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(n for _, names in self.label_sets for n in names)

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every ordered pair within a label set (a shape to a shape, a scale to a scale)."""
        return tuple((a, b) for _, names in self.label_sets for a in names for b in names if a != b)

    def domain_split_of(self, domain: str) -> str:
        return self.label_sets[self.set_of(domain)][0]

    def set_of(self, domain: str) -> int:
        """Which label set a domain belongs to."""
        domain_index(self.domains, domain)   # one sentence for an unknown name
        return next(i for i, (_, names) in enumerate(self.label_sets) if domain in names)

    @property
    def grid_shape(self) -> tuple[int, int]:   # type: ignore[override]
        k = len(self.label_sets[0][1])
        return (k * (k + 1), 8)

    @property
    def condition_size(self) -> int:
        """Length of G's condition vector: one entry per domain of every set, plus the mask."""
        return len(self.domains) + (len(self.label_sets) if self.uses_mask else 0)

    def logit_slice(self, label_set: int) -> slice:
        """The columns of D's domain logits that belong to a label set."""
        start = sum(len(names) for _, names in self.label_sets[:label_set])
        return slice(start, start + len(self.label_sets[label_set][1]))

    def condition(self, domain_ids: torch.Tensor, label_set: int = 0) -> torch.Tensor:
        """Condition vectors (N x condition_size) for domain indices within a label set: the set's
        one-hot in its place, zeros for the other set, and the mask saying which set it is."""
        n, k = domain_ids.shape[0], len(self.domains)
        out = torch.zeros((n, self.condition_size), device=domain_ids.device)
        part = self.logit_slice(label_set)
        out[:, part] = F.one_hot(domain_ids.long(), part.stop - part.start).float()
        if self.uses_mask:
            out[:, k + label_set] = 1.0
        return out

    def training_only(self) -> tuple[str, ...]:
        return ("discriminator.",)

    @torch.no_grad()
    def translate(self, images: torch.Tensor, to: str, source: str | None = None) -> torch.Tensor:
        label_set = self.set_of(to)
        if source is not None and self.set_of(source) != label_set:
            raise GMError(f"'{source}' and '{to}' belong to different label sets; StarGAN translates within "
                          f"one ({', '.join(f'{a}->{b}' for a, b in self.pairs())}).")
        names = self.label_sets[label_set][1]
        x = images.to(self.device).float()
        ids = torch.full((x.shape[0],), names.index(to), device=self.device)
        with self.evaluating():
            out = self.generator(x * 2 - 1, self.condition(ids, label_set))
        return ((out + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def translation_grid(self, sources: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """For each source domain of the first label set: its images, then one row per domain of
        that set (the translation)."""
        rows = []
        names = self.label_sets[0][1]
        for a, src in sources.items():
            if a not in names:
                continue
            src = src.to(self.device).float()
            rows.append(src)
            rows += [self.translate(src, to=b, source=a) for b in names]
        return torch.cat(rows), int(next(iter(sources.values())).shape[0])
