"""Who provisions an image, read the way waagent 2.7.3 decides, and the QEMU override it needs.

The compliant Debian 12 tree has Debian's real waagent package (its unit with
``ConditionVirtualization=microsoft``); each case changes one thing in a private copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import imagebuild as ib
from vmimage.app.provision import overrides_for
from vmimage.facts.provisioner import read_provisioner
from vmimage.targets.open import open_target

pytestmark = pytest.mark.slow


@pytest.fixture
def tree() -> Iterator[Path]:
    root = ib.clone_tree()
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)


def _read(root: Path):
    return read_provisioner(open_target(str(root)))


def test_compliant_tree_is_provisioned_by_waagent_with_debians_condition(tree):
    prov = _read(tree)
    assert prov.by == "waagent" and prov.agent_setting == "auto"
    assert prov.virtualization_condition == "microsoft"
    assert prov.blockers() == []
    (path, text), = overrides_for(prov).items()
    assert path == "/etc/systemd/system/walinuxagent.service.d/vmimage-qemu.conf"
    assert "[Unit]\nConditionVirtualization=\n" in text


def test_other_conditions_are_repeated_after_the_reset(tree):
    unit = tree / "lib/systemd/system/walinuxagent.service"
    unit.write_text(unit.read_text().replace(
        "ConditionVirtualization=microsoft",
        "ConditionVirtualization=microsoft\nConditionPathExists=/etc/waagent.conf"))
    text = next(iter(overrides_for(_read(tree)).values()))
    assert text.endswith("ConditionVirtualization=\nConditionPathExists=/etc/waagent.conf\n")


def test_agent_disabled_means_nobody(tree):
    (tree / "etc/systemd/system/multi-user.target.wants/walinuxagent.service").unlink()
    prov = _read(tree)
    assert prov.by == "nobody"
    assert "neither the Azure agent" in prov.blockers()[0]


def test_provisioning_agent_disabled_and_the_provisioned_file(tree):
    conf = tree / "etc/waagent.conf"
    conf.write_text(conf.read_text().replace("Provisioning.Agent=auto",
                                             "Provisioning.Agent=disabled"))
    (tree / "var/lib/waagent/provisioned").write_text("")
    said = _read(tree).blockers()
    assert any("Provisioning.Agent=disabled (/etc/waagent.conf line" in s for s in said)
    assert any("not deprovisioned" in s for s in said)


def test_legacy_provisioning_enabled_is_not_read(tree):
    """waagent 2.7.3 reads Provisioning.Agent only: Provisioning.Enabled=n stops nothing."""
    conf = tree / "etc/waagent.conf"
    conf.write_text(conf.read_text().replace("Provisioning.Agent=auto\n", "")
                    + "Provisioning.Enabled=n\n")
    prov = _read(tree)
    assert prov.agent_setting == "auto" and prov.by == "waagent" and prov.blockers() == []


def test_cloud_init_enabled_takes_over_in_auto(tree):
    unit = tree / "lib/systemd/system/cloud-init-local.service"
    unit.write_text("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n"
                    "[Install]\nWantedBy=cloud-init.target\n")
    wants = tree / "etc/systemd/system/cloud-init.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "cloud-init-local.service").symlink_to("/lib/systemd/system/cloud-init-local.service")
    assert _read(tree).by == "cloud-init"
