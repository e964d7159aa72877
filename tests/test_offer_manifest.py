"""The manifest loader: YAML 1.2 as written, and every bad input a finding with file, line and
key, never a traceback (fuzzed with hypothesis)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.offer_support import GOOD, write
from vmimage.errors import InputError
from vmimage.findings import Status
from vmimage.offer.manifest import load_manifest, parse_manifest
from vmimage.offer.rules import validate_offer
from vmimage.offer.yamlload import YamlSyntaxError, load_yaml
from vmimage.profiles import load_profile


def messages(path: Path) -> list[tuple[int | None, str]]:
    loaded = load_manifest(path)
    assert loaded.manifest is None
    out = []
    for p in loaded.problems:
        assert p.evidence.path == str(path)
        out.append((p.evidence.line, p.message))
    # The OFFER-MANIFEST rule turns the loader's problems into one failed finding.
    [f] = [f for f in validate_offer(loaded, load_profile("azure-current"), probe=None)
           if f.check_id == "OFFER-MANIFEST"]
    assert f.status is Status.FAIL and len(f.evidence) == len(loaded.problems)
    return out


def test_good_manifest_loads(tmp_path: Path) -> None:
    loaded = load_manifest(write(tmp_path, GOOD))
    assert loaded.problems == []
    assert loaded.manifest is not None
    assert [s.id for s in loaded.manifest.skus] == ["web-gen1", "web-gen2"]
    assert loaded.line(("skus", 1, "image_type")) == 25


def test_yaml_12_not_11() -> None:
    """PyYAML would read 1.10 as 1.1, no as False, 0123 as octal 83 (rulings)."""
    doc = load_yaml("a: 1.10\nb: no\nc: 0123\nd: yes\ne: 0o17\nf: true\ng: ~\nh: 1e3\n")
    assert doc.data == {"a": "1.10", "b": "no", "c": 123, "d": "yes", "e": 15, "f": True,
                        "g": None, "h": "1e3"}
    data = doc.data
    assert isinstance(data, dict)
    assert data["c"].source == "0123"


def test_version_written_as_number_stays_text(tmp_path: Path) -> None:
    text = GOOD.replace('version: "1.0.0"', "version: 1.10", 1)
    loaded = load_manifest(write(tmp_path, text))
    assert loaded.manifest is not None
    assert loaded.manifest.skus[0].versions[0].version == "1.10"


def test_integer_id_is_its_text(tmp_path: Path) -> None:
    loaded = load_manifest(write(tmp_path, GOOD.replace("id: web-gen1", "id: 0123", 1)))
    assert loaded.manifest is not None
    assert loaded.manifest.skus[0].id == "0123"


def test_yaml_11_directive_does_not_change_meaning() -> None:
    assert load_yaml("%YAML 1.1\n---\nb: no\n").data == {"b": "no"}


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = GOOD.replace("  title: Contoso Web Server\n",
                        "  title: Contoso Web Server\n  title: Again\n", 1)
    [(line, message)] = messages(write(tmp_path, text))
    assert line == 5
    assert "'title' is given twice (first on line 4)" in message


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("    summary: Nginx on Debian 12, hardened",
                        "    sumary: typo\n    summary: Nginx on Debian 12, hardened", 1)
    [(line, message)] = messages(write(tmp_path, text))
    assert line == 11
    assert message == "skus[0].sumary: unknown key 'sumary' (did you mean 'summary'?)"


def test_wrong_types_each_named(tmp_path: Path) -> None:
    text = (GOOD.replace("id: web-gen1", "id: true", 1)
            .replace("{lun: 0, url", '{lun: "0", url', 1)
            .replace("image_type: gen2", "image_type: gen3", 1))
    found = messages(write(tmp_path, text))
    assert (8, "skus[0].id: expected text, got a boolean (quote it if it is text)") in found
    assert any(line == 19 and m.startswith("skus[0].versions[0].data_disks[0].lun: expected an "
                                           "integer") for line, m in found)
    assert any(line == 25 and m.startswith("skus[1].image_type: 'gen3' is not allowed")
               for line, m in found)


def test_missing_keys(tmp_path: Path) -> None:
    text = GOOD.replace("    summary: Nginx on Debian 12, hardened and ready to serve.\n", "")
    [(line, message)] = messages(write(tmp_path, text))
    assert (line, message) == (8, "skus[0].summary: missing key 'summary'")


def test_disk_shapes(tmp_path: Path) -> None:
    text = GOOD.replace('{lun: 0, url: "https://contosovhds.blob.core.windows.net/vhds/'
                        'web-1.0.0-d0.vhd"}', "{lun: 0, empty_size: 32}", 1)
    text = text.replace('{lun: 0, url: "https://contosovhds.blob.core.windows.net/vhds/'
                        'web2-1.0.0-d0.vhd"}', "{lun: 0}", 1)
    found = messages(write(tmp_path, text))
    assert (19, "skus[0].versions[0].data_disks[0].empty_size: a size needs a unit, e.g. "
                "'32GiB'") in found
    assert (31, "skus[1].versions[0].data_disks[0]: a disk needs 'file' (a local VHD) or "
                "'url' (its blob)") in found


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("", 1, "the file is empty"),
    ("a: [1\n", 2, "expected ',' or ']'"),
    ("a: !!binary aGk=\n", 1, "tag !!binary is not supported"),
    ("a: !custom x\n", 1, "tag !custom is not supported"),
    ("---\na: 1\n---\nb: 2\n", 3, "only one document"),
    ("? [1]\n: 2\n", 1, "a mapping key must be a plain scalar"),
    ("a: &x [*x]\n", 1, "names no complete anchor"),
    ("<<: {a: 1}\n", 1, "merge keys"),
    ("- 1\n- 2\n", None, "the manifest must be a mapping"),
    ("publisher: [\n", None, "not a valid manifest"),
])
def test_bad_yaml_is_a_finding(tmp_path: Path, text: str, line: int | None,
                               fragment: str) -> None:
    found = messages(write(tmp_path, text))
    assert any(fragment in m and (line is None or ln == line) for ln, m in found), found


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, "
              f"*a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
    with pytest.raises(YamlSyntaxError, match="more than"):
        load_yaml("\n".join(lines) + "\n")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(YamlSyntaxError, match="nested deeper"):
        load_yaml("a: " + "[" * 100 + "]" * 100 + "\n")


def test_aliases_share_sections(tmp_path: Path) -> None:
    """The example shares os, sizes and the questionnaire between SKUs with anchors."""
    loaded = load_manifest(Path(__file__).parent.parent / "examples" / "offer.yaml")
    assert loaded.manifest is not None, loaded.problems
    first, second = loaded.manifest.skus
    assert first.os == second.os and first.questionnaire == second.questionnaire


@pytest.mark.parametrize(("setup", "problem"), [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"publisher: \xff\xfe\n"), "not UTF-8"),
])
def test_unreadable_manifest_is_input_error(tmp_path: Path, setup: object,
                                            problem: str) -> None:
    path = tmp_path / "offer.yaml"
    assert callable(setup)
    setup(path)
    with pytest.raises(InputError, match=re.escape(problem)):
        load_manifest(path)


# ---- fuzzing -----------------------------------------------------------------------------------

_YAMLISH = st.text(alphabet=[*"abc:-{}[],&*!|>'\"#%@`?~\n\t 0189.eE_+", "\u2010", "é",
                             "\x00", "\x85", "\ufeff"], max_size=200)


def _check_no_crash(text: str) -> None:
    loaded = parse_manifest(text, Path("fuzz.yaml"))
    if loaded.manifest is None:
        assert loaded.problems
        for p in loaded.problems:
            assert p.evidence.path == "fuzz.yaml"
            assert "\n" not in p.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_YAMLISH)
def test_fuzz_random_text(text: str) -> None:
    _check_no_crash(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_manifest(data: st.DataObject) -> None:
    lines = GOOD.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "dup", "edit", "insert"]))
        if action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "edit":
            pos = data.draw(st.integers(0, max(0, len(lines[i]))))
            lines[i] = lines[i][:pos] + data.draw(_YAMLISH) + lines[i][pos + 1:]
        else:
            lines.insert(i, data.draw(_YAMLISH))
        if not lines:
            break
    _check_no_crash("\n".join(lines) + "\n")


@settings(max_examples=150, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
    st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) |
    st.dictionaries(st.sampled_from(["publisher", "offer", "id", "title", "skus", "versions",
                                     "os_disk", "data_disks", "lun", "file", "url", "os",
                                     "family", "type", "version", "x"]), children, max_size=5),
    max_leaves=30))
def test_fuzz_structures(value: object) -> None:
    """Any YAML-representable structure: shape findings, never an exception."""
    from io import StringIO

    from ruamel.yaml import YAML

    out = StringIO()
    YAML(typ="safe", pure=True).dump({"publisher": "p", "offer": value, "skus": [value]}, out)
    _check_no_crash(out.getvalue())


# -- hostile manifests (issue 17) -----------------------------------------------------------


def test_an_integer_of_thousands_of_digits_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    text = GOOD.replace("{lun: 0, url:", "{lun: " + "9" * 5000 + ", url:", 1)
    [(line, message)] = messages(write(tmp_path, text))
    assert line == 19 and "an integer of 5000 digits" in message


def test_a_lone_surrogate_is_refused_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("title: Contoso Web Server", 'title: "Contoso \\ud800 Web"')
    [(line, message)] = messages(write(tmp_path, text))
    assert line == 4 and "lone surrogate" in message


def test_a_password_in_a_disk_url_is_refused_and_never_repeated(tmp_path: Path) -> None:
    url = "https://user:hunter2secret@contosovhds.blob.core.windows.net/vhds/web-1.0.0-os.vhd"
    text = GOOD.replace("https://contosovhds.blob.core.windows.net/vhds/web-1.0.0-os.vhd", url)
    text = text.replace("container_url: https://contosovhds",
                        "container_url: https://u:pw2secret@contosovhds")
    path = write(tmp_path, text)
    found = messages(path)
    assert {line for line, _ in found} == {6, 17}
    assert all("user name or password" in m for _, m in found)
    loaded = load_manifest(path)
    shown = repr([(p.message, p.evidence) for p in loaded.problems])
    assert "hunter2secret" not in shown and "pw2secret" not in shown
    assert "REDACTED@" in shown
