"""What every offer rule reads: the manifest with its lines, the profile, what was published
before, and (when local disks may be opened) a cached probe of each disk file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.errors import VmimageError
from vmimage.findings import Evidence
from vmimage.offer.keys import Key
from vmimage.offer.probe import DiskProbe
from vmimage.profiles import Profile

if TYPE_CHECKING:  # the model loads pydantic: only a run on a manifest needs it
    from vmimage.offer.manifest import LoadedManifest
    from vmimage.offer.model import DataDisk, Disk, ImageVersion, Manifest, Sku

ProbeFn = Callable[[Path], DiskProbe]


@dataclass(frozen=True)
class DiskRef:
    """One disk of one image, with the key it sits under and the role its size is judged by."""

    key: Key
    role: str  # "os-linux", "os-windows" or "data"
    disk: Disk
    lun: int | None = None

    @property
    def data(self) -> DataDisk | None:
        """The data disk (None for the OS disk)."""
        from vmimage.offer.model import DataDisk

        return self.disk if isinstance(self.disk, DataDisk) else None


@dataclass
class OfferContext:
    """The manifest under validation and everything a rule may compare it with."""

    loaded: LoadedManifest
    profile: Profile
    previous: LoadedManifest | None = None
    probe: ProbeFn | None = None
    _probes: dict[Path, DiskProbe] = field(default_factory=dict)

    @property
    def capabilities(self) -> frozenset[str]:
        """``local-disks`` when disk files may be opened (what the engine gates rules on)."""
        return frozenset({"local-disks"}) if self.probe is not None else frozenset()

    @property
    def manifest(self) -> Manifest:
        """The manifest; a rule reading it on an unreadable manifest is skipped, not passed.

        Raises:
            VmimageError: the manifest could not be read into the model (OFFER-MANIFEST says
                why).
        """
        if self.loaded.manifest is None:
            raise VmimageError("the manifest could not be read (see OFFER-MANIFEST)")
        return self.loaded.manifest

    @property
    def published(self) -> Manifest | None:
        """What was published before, when it was given and could be read."""
        return self.previous.manifest if self.previous is not None else None

    def ev(self, key: Key, seen: str | None = None, required: str | None = None) -> Evidence:
        """Evidence at ``key`` in the manifest."""
        return self.loaded.evidence(key, seen, required)

    def threshold(self, name: str, default: object) -> object:
        """A profile threshold, or ``default`` for a profile that predates the key."""
        return self.profile.thresholds.get(name, default)

    def skus(self) -> Iterator[tuple[Key, Sku]]:
        """Each SKU with its key."""
        for i, sku in enumerate(self.manifest.skus):
            yield ("skus", i), sku

    def versions(self) -> Iterator[tuple[Key, Sku, Key, ImageVersion]]:
        """Each version of each SKU, with both keys."""
        for sku_key, sku in self.skus():
            for j, version in enumerate(sku.versions):
                yield sku_key, sku, (*sku_key, "versions", j), version

    def disks(self, sku: Sku, version_key: Key, version: ImageVersion) -> Iterator[DiskRef]:
        """The OS disk then the data disks of one version (none for a gallery image)."""
        if version.os_disk is not None:
            yield DiskRef((*version_key, "os_disk"), f"os-{sku.os.family}", version.os_disk)
        for k, data in enumerate(version.data_disks):
            yield DiskRef((*version_key, "data_disks", k), "data", data, data.lun)

    def plans(self) -> dict[str, list[tuple[Key, Sku]]]:
        """SKUs grouped by Partner Center plan, in manifest order."""
        out: dict[str, list[tuple[Key, Sku]]] = {}
        for key, sku in self.skus():
            out.setdefault(sku.plan_id, []).append((key, sku))
        return out

    def local(self, file: str) -> DiskProbe | None:
        """The probe of a local disk file (cached); None when disks are not opened."""
        if self.probe is None:
            return None
        path = self.loaded.resolve(file)
        if path not in self._probes:
            self._probes[path] = self.probe(path)
        return self._probes[path]
