"""The offer manifest (``offer.yaml``) as pydantic models: the one file a publisher keeps.

The models hold *shape* only: which keys exist, their types, and what must go together (a
disk is a file, a blob URL or an empty size). Every marketplace rule with a requirement ID
(identifier characters, version numbers, LUNs, sizes...) lives in :mod:`vmimage.offer.rules`,
so that a manifest that breaks several rules gets every finding at once, each naming its ID.

Keys are snake_case; unknown keys are refused (a typo must not silently drop a setting).
Text fields accept what YAML reads as an integer (``id: 2024`` is ``"2024"``, as written) but
never a boolean or null; integer fields accept only integers (``lun: "0"`` is refused).
``scripts/gen-offer-schema.py`` writes the JSON Schema of :class:`Manifest` for editors.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from vmimage.offer.yamlload import YamlInt
from vmimage.units import GiB, parse_size

#: Partner Center's operating-system types, per family (virtual-machine-operating-system schema).
LINUX_TYPES = ("debian", "centos", "openSolaris", "redHat", "ubuntu", "suse", "cblMariner",
               "oracleLinux", "other")
WINDOWS_TYPES = ("windowsServer2008R2", "windowsServer2012", "windowsServer2012R2",
                 "windowsServer2012R2Datacenter", "windowsServer2016", "windowsServer2019",
                 "windowsServer2022", "windowsServer2022DatacenterAzureEdition",
                 "windowsServerVersion20H2", "windowsServerVersion2004", "other")
OS_TYPES = {"linux": LINUX_TYPES, "windows": WINDOWS_TYPES}
_PORT_LABEL = re.compile(r"^[a-zA-Z_0-9.\- ]*[a-zA-Z_0-9]$")
_PORT_RANGE = re.compile(r"^([0-9]{1,5})(?:\s*-\s*([0-9]{1,5}))?$")

Family = Literal["linux", "windows"]
ImageType = Literal["gen1", "gen2"]
HostCaching = Literal["None", "ReadOnly", "ReadWrite"]
OsType = Literal[
    "debian", "centos", "openSolaris", "redHat", "ubuntu", "suse", "cblMariner", "oracleLinux",
    "windowsServer2008R2", "windowsServer2012", "windowsServer2012R2",
    "windowsServer2012R2Datacenter", "windowsServer2016", "windowsServer2019",
    "windowsServer2022", "windowsServer2022DatacenterAzureEdition", "windowsServerVersion20H2",
    "windowsServerVersion2004", "other",
]


def _as_text(value: object) -> object:
    """Integers as written become text; booleans and null are refused with a hint."""
    if isinstance(value, bool):
        raise ValueError("expected text, got a boolean (quote it if it is text)")
    if isinstance(value, YamlInt):
        return value.source
    if isinstance(value, int):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text)]


def _no_userinfo(value: str) -> str:
    """Refuse ``user:password@`` in a blob URL: the submission documents copy disk URLs as
    they are (``configure.json`` would carry the password), and an HTTP client would send it
    as Basic credentials to whatever host the URL names."""
    try:
        netloc = urlsplit(value.strip()).netloc
    except ValueError:
        return value  # not a URL at all: OFFER-DISK-SOURCE says so, with its line
    if "@" in netloc:
        raise ValueError("a blob URL carries no user name or password (it would be copied "
                         "into the submission): remove the part before '@'")
    return value


#: A blob or container URL: text without a user name or password.
UrlText = Annotated[str, BeforeValidator(_as_text), AfterValidator(_no_userinfo)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OfferInfo(_Model):
    """The offer: the parent of every SKU in the manifest (OFR-PARENT)."""

    id: Text = Field(description="Offer identifier: part of public URLs (OFR-URL).")
    title: Text = Field(description="The offer's name as customers see it.")


class Storage(_Model):
    """Where the VHDs are uploaded, so that a local file's blob URL need not be repeated."""

    container_url: UrlText | None = Field(
        default=None, description="Blob container URL without a token; a disk given only as a file "
                          "is expected at <container_url>/<file name>.")


class OsInfo(_Model):
    """What the SKU says it runs (PUB-OS)."""

    family: Family
    type: OsType = Field(description="Partner Center's OS type for the family.")
    friendly_name: Text = Field(description="Family, type, version and update, e.g. "
                                            "'Windows Server 2012 R2 Datacenter'.")

    @model_validator(mode="after")
    def _type_of_family(self) -> OsInfo:
        if self.type not in OS_TYPES[self.family]:
            raise ValueError(f"type {self.type!r} is not a {self.family} type (choose "
                             f"{', '.join(OS_TYPES[self.family])})")
        return self


class Disk(_Model):
    """One VHD: a local file, a blob URL (without a token), or both."""

    file: Text | None = Field(default=None, description="Local VHD, relative to the manifest.")
    url: UrlText | None = Field(default=None, description="Blob URL of the uploaded VHD, without a SAS "
                                               "token (tokens are read at render time).")
    host_caching: HostCaching | None = Field(default=None, description="Classic HostCaching; default "
                                                               "ReadWrite (OS) or None (data).")

    @model_validator(mode="after")
    def _has_source(self) -> Disk:
        if self.file is None and self.url is None and not self._may_be_empty():
            raise ValueError("a disk needs 'file' (a local VHD) or 'url' (its blob)")
        return self

    def _may_be_empty(self) -> bool:
        return False


class DataDisk(Disk):
    """A data disk at a LUN: a VHD, or an empty disk of a given size."""

    lun: StrictInt = Field(description="Logical unit number: 0, 1, ... with no gaps.")
    empty_size: Text | None = Field(
        default=None, description="An empty disk of this size (whole GiB, e.g. '32GiB') instead of a "
                          "VHD: valid for the classic Create VM Image request only.")

    @field_validator("empty_size")
    @classmethod
    def _whole_gib(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().isdigit():
            raise ValueError("a size needs a unit, e.g. '32GiB'")
        size = parse_size(value)  # its ValueError names the text
        if size <= 0 or size % GiB:
            raise ValueError("must be a positive whole number of GiB (LogicalDiskSizeInGB)")
        return value

    @model_validator(mode="after")
    def _empty_alone(self) -> DataDisk:
        if self.empty_size is not None and (self.file is not None or self.url is not None):
            raise ValueError("an empty disk ('empty_size') has no 'file' or 'url'")
        return self

    def _may_be_empty(self) -> bool:
        return self.empty_size is not None

    @property
    def empty_bytes(self) -> int | None:
        """The empty disk's size in bytes (None: the disk is a VHD)."""
        return None if self.empty_size is None else parse_size(self.empty_size)


class GalleryImage(_Model):
    """An Azure Compute Gallery image version, today's alternative to SAS URIs."""

    tenant_id: Text
    resource_id: Text = Field(description="/subscriptions/.../galleries/<g>/images/<i>/"
                                          "versions/<v>")


class ImageVersion(_Model):
    """One version of a SKU's image: its disks, or a gallery image."""

    version: Text = Field(description="X.Y.Z of integers, as text (PUB-VERSION).")
    os_disk: Disk | None = None
    data_disks: list[DataDisk] = Field(default_factory=list)
    gallery_image: GalleryImage | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageVersion:
        if (self.os_disk is None) == (self.gallery_image is None):
            raise ValueError("a version has 'os_disk' (with optional 'data_disks') or "
                             "'gallery_image', exactly one of them")
        if self.gallery_image is not None and self.data_disks:
            raise ValueError("a gallery image carries its own data disks: remove 'data_disks'")
        return self


class VmProperties(_Model):
    """Plan properties that change how certification behaves (research §3.5)."""

    supports_extensions: bool = True
    supports_backup: bool = False
    supports_accelerated_networking: bool = False
    supports_cloud_init: bool = False
    supports_nvme: bool = False
    supports_hibernation: bool = False
    supports_aad_login: bool = False
    supports_remote_connection: bool = Field(
        default=True, description="False: SSH/RDP blocked (locked-down image); some checks do not run.")
    requires_custom_arm_template: bool = False
    is_network_virtual_appliance: bool = False


class OpenPort(_Model):
    """A port the image opens: ``"443"`` or a range ``"8000-8080"`` (Partner Center's rules)."""

    label: Text = Field(description="3 to 20 letters, digits, '_', '.', '-' or spaces.")
    ports: Text = Field(description="One port or a range, e.g. '443' or '8000-8080'.")
    protocol: Literal["tcp", "udp", "both"]

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _PORT_LABEL.match(value) or not 3 <= len(value) <= 20:
            raise ValueError("3 to 20 letters, digits, '_', '.', '-' or spaces, ending with a "
                             "letter or digit")
        return value

    @field_validator("ports")
    @classmethod
    def _range(cls, value: str) -> str:
        match = _PORT_RANGE.match(value)
        numbers = [int(n) for n in match.groups() if n is not None] if match else []
        if not numbers or any(n > 65535 for n in numbers) or numbers != sorted(numbers):
            raise ValueError("a port (0-65535) or a rising range such as '8000-8080'")
        return value


class Answer(_Model):
    """One question of the certification questionnaire and its answer (CRT-QUESTIONNAIRE)."""

    question: Text
    answer: Text


class Questionnaire(_Model):
    """What the publisher adds after the automated tests (CRT-QUESTIONNAIRE)."""

    answers: list[Answer] = Field(default_factory=list)
    remote_access: Text | None = Field(
        default=None, description="How the certification team reaches the VM (no secrets here).")
    explanations: dict[str, Text] = Field(
        default_factory=dict, description="Check ID -> why a failed assessment is acceptable.")


class Sku(_Model):
    """A SKU: the commercial name of one VM image, with its versions."""

    id: Text = Field(description="SKU identifier: part of public URLs (OFR-URL, OFR-SKU-ID).")
    plan: Text | None = Field(default=None, description="Partner Center plan ID (default: the SKU ID). "
                                                "A plan holds at most one gen1 and one gen2 SKU.")
    title: Text
    summary: Text = Field(description="Short, readable, customer-visible (OFR-SUMMARY).")
    os: OsInfo
    image_type: ImageType = "gen1"
    recommended_sizes: list[Text] = Field(default_factory=list, description="PUB-SIZES.")
    properties: VmProperties = VmProperties()
    open_ports: list[OpenPort] = Field(default_factory=list)
    questionnaire: Questionnaire = Questionnaire()
    versions: list[ImageVersion] = Field(min_length=1)

    @property
    def plan_id(self) -> str:
        """The Partner Center plan this SKU's image type belongs to."""
        return self.plan if self.plan is not None else self.id


class Manifest(_Model):
    """``offer.yaml``: a publisher namespace, one offer, and its SKUs."""

    publisher: Text = Field(description="Publisher namespace: part of public URLs (OFR-URL).")
    offer: OfferInfo
    storage: Storage = Storage()
    skus: list[Sku] = Field(min_length=1)
