"""cloud-init's configuration read as cloud-init reads it: PyYAML's safe loader (YAML 1.1),
``cloud.cfg.d/*.cfg`` merged over ``cloud.cfg``, and ``cc_mounts``' rules for swap.

PyYAML is the oracle for what a file holds (cloud-init itself calls it); every case below is
one a line-by-line reader of a YAML subset got wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests import targets_images as ti
from vmimage.facts.swap import read_cloud_config, read_swap, swap_sources
from vmimage.targets.image import ImageTarget
from vmimage.targets.rootdir import RootDirTarget
from vmimage.yamlcompat import MAX_BYTES

D = "/etc/cloud/cloud.cfg.d"


class CloudInitLoader(yaml.SafeLoader):
    """cloud-init's own loader (cloudinit/safeyaml.py): the oracle for what a file holds."""


CloudInitLoader.add_constructor("tag:yaml.org,2002:python/unicode",
                                lambda loader, node: loader.construct_scalar(node))


def put(root: Path, path: str, text: str | bytes) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)


def found(root: Path) -> list[tuple[str, str, int | None, str]]:
    return [(s.what, s.path, s.line, s.description) for s in swap_sources(RootDirTarget(root))]


# (file text, the swap file it makes or None) -- each checked against PyYAML first
SWAP_CASES = {
    "flow-over-lines": ("swap: {filename: /swap.img,\n       size: auto}\n", "/swap.img"),
    "whole-flow-document": ("{swap: {filename: /swap.img, size: 2G}, mounts: []}\n",
                            "/swap.img"),
    "quoted-key": ('"swap":\n  filename: /swapfile\n  size: 1G\n', "/swapfile"),
    "merge-key": ("defaults: &d {size: 512M}\nswap:\n  <<: *d\n  filename: /var/swap\n",
                  "/var/swap"),
    "document-marker-and-tag": ("#cloud-config\n--- !!map\nswap: !!map\n"
                                "  filename: !!python/unicode /swap.img\n  size: 2147483648\n",
                                "/swap.img"),
    "yaml11-no-is-false": ("swap:\n  filename: /swap.img\n  size: no\n", None),
    "yaml11-off-is-false": ("swap:\n  filename: /swap.img\n  size: off\n", None),
    "hex-zero": ("swap:\n  filename: /swap.img\n  size: 0x0\n", None),
    "duplicate-key-last-wins": ("swap:\n  size: 2G\nswap:\n  size: 0\n", None),
    "null-filename": ("swap:\n  filename: ~\n  size: 2G\n", None),
    "below-one-mib": ("swap:\n  size: 1000\n", None),
    "human2bytes-refuses": ("swap:\n  size: 2g\n", None),
    "nested-elsewhere": ("other:\n  swap:\n    size: 2G\n", None),
}


@pytest.mark.parametrize("case", sorted(SWAP_CASES))
def test_swap_mapping_in_any_yaml_style(tmp_path: Path, case: str) -> None:
    text, swap_file = SWAP_CASES[case]
    loaded = yaml.load(text, Loader=CloudInitLoader)
    assert isinstance(loaded, dict)
    put(tmp_path, f"{D}/90-swap.cfg", text)
    got = [what for what, *_ in found(tmp_path)]
    assert got == ([swap_file] if swap_file else []), case


def test_swap_line_is_the_size_line(tmp_path: Path) -> None:
    put(tmp_path, f"{D}/90-swap.cfg", "#cloud-config\nswap:\n  filename: /swap.img\n"
                                      "  size: auto\n")
    assert found(tmp_path) == [("/swap.img", f"{D}/90-swap.cfg", 4,
                                "cloud-init swap: filename=/swap.img size=auto")]


def test_block_sequence_mounts(tmp_path: Path) -> None:
    put(tmp_path, "/etc/cloud/cloud.cfg", "mounts:\n"
                                         "  - - ephemeral0\n    - /mnt\n"
                                         "  -\n    - /dev/sdb2\n    - none\n    - swap\n"
                                         "  - [/dev/sdc1, none, swap]\n"
                                         "  - [/dev/sdc1, null]\n"  # drops the line above
                                         "  - [swap, none, swap]\n")  # the datasource's name
    assert found(tmp_path) == [("/dev/sdb2", "/etc/cloud/cloud.cfg", 5,  # where the list starts
                                "cloud-init mounts: /dev/sdb2 as swap")]


def test_later_files_win_and_mappings_merge_per_key(tmp_path: Path) -> None:
    put(tmp_path, "/etc/cloud/cloud.cfg", "swap:\n  filename: /from-main\n  size: 1G\n")
    put(tmp_path, f"{D}/10-size.cfg", "swap:\n  size: 4G\n")
    assert found(tmp_path) == [("/from-main", f"{D}/10-size.cfg", 2,
                                "cloud-init swap: filename=/from-main size=4G")]
    put(tmp_path, f"{D}/.late.cfg", "swap: {size: 0}\n")  # sorts first: lowest of the .d files
    assert len(found(tmp_path)) == 1
    put(tmp_path, f"{D}/99-off.cfg", "swap: {size: 0}\n")
    assert found(tmp_path) == []
    config = read_cloud_config(RootDirTarget(tmp_path))
    assert [path for path, _ in config.files] == [f"{D}/99-off.cfg", f"{D}/10-size.cfg",
                                                  f"{D}/.late.cfg", "/etc/cloud/cloud.cfg"]


def test_a_dot_file_is_read_as_cloud_init_reads_it(tmp_path: Path) -> None:
    put(tmp_path, f"{D}/.hidden.cfg", "swap: {filename: /swap.img, size: 1G}\n")
    put(tmp_path, f"{D}/notcfg.txt", "swap: {filename: /other, size: 1G}\n")
    assert [what for what, *_ in found(tmp_path)] == ["/swap.img"]


def test_malformed_file_is_a_note_and_ignored(tmp_path: Path) -> None:
    put(tmp_path, "/etc/cloud/cloud.cfg", "swap:\n  filename: /swap.img\n  size: 1G\n")
    put(tmp_path, f"{D}/50-broken.cfg", "swap:\n  size: [0\nmounts: {\n")
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load((tmp_path / f"{D.lstrip('/')}/50-broken.cfg").read_text())
    result = read_swap(RootDirTarget(tmp_path))
    assert [s.what for s in result.sources] == ["/swap.img"]  # cloud-init skips the broken one
    [note] = result.notes
    assert note.startswith(f"{D}/50-broken.cfg: line ") and "cloud-init ignores" in note


@pytest.mark.parametrize("content", [
    b"swap:\n  size: \xff\xfe\n",  # not UTF-8
    b"\x00\x01swap",  # control characters PyYAML refuses
    b"[" * 200_000,  # nesting beyond PyYAML's recursion
    b"- a\n- b\n",  # a list, not a mapping
    b"date: 2020-13-45\n",  # a timestamp the constructor cannot build (ValueError)
    b"--- {}\n--- {}\n",  # two documents
    b"# " + b"x" * MAX_BYTES + b"\n",  # larger than the bound
])
def test_odd_input_never_raises(tmp_path: Path, content: bytes) -> None:
    put(tmp_path, f"{D}/50-odd.cfg", content)
    result = read_swap(RootDirTarget(tmp_path))
    assert result.sources == []
    [note] = result.notes
    assert note.startswith(f"{D}/50-odd.cfg: ")


def test_swap_not_a_mapping_is_a_note(tmp_path: Path) -> None:
    put(tmp_path, f"{D}/50-swap.cfg", "swap: /swap.img\n")
    result = read_swap(RootDirTarget(tmp_path))
    assert result.sources == [] and result.notes == [
        f"{D}/50-swap.cfg: swap is not a mapping; cloud-init ignores it"]


def test_nested_swap_read_from_a_disk_image(tmp_path: Path) -> None:
    """The same reading through the image target: ext4 made by mkfs.ext4 -d."""
    tree = tmp_path / "tree"
    put(tree, "/etc/fstab", "LABEL=root / ext4 defaults 0 1\n")
    put(tree, "/etc/os-release", "ID=debian\n")
    put(tree, "/etc/cloud/cloud.cfg", "cloud_init_modules: [mounts]\n")
    put(tree, f"{D}/90-azure-swap.cfg", "#cloud-config\n{swap: {filename: /mnt/swap.img,\n"
                                        "  size: 2G}}\n")
    disk = ti.blank(tmp_path / "disk.raw", 10 * ti.MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, type=L\n")
    ti.mkfs_ext(disk, ti.MiB, 8 * ti.MiB, tree, "ext4", "root")
    with ImageTarget(disk) as target:
        assert [(s.what, s.path, s.line) for s in swap_sources(target)] == [
            ("/mnt/swap.img", f"{D}/90-azure-swap.cfg", 3)]
