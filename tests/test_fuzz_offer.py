"""Fuzzing offer manifests (issue 17): the YAML reader, the model, every manifest rule and
both renderers, on arbitrary text and on mutations of a good manifest.

Each example runs in a forked child bounded in time and memory (:mod:`tests.fuzzing`):
loading may give problems, rules may fail, rendering may refuse with the typed error
(``VmimageError``); nothing may raise anything else, hang, or run out of memory. Short in CI;
``VMIMAGE_FUZZ_EXAMPLES=5000`` runs longer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import run_bounded
from tests.offer_support import GOOD
from vmimage.offer.classic import render_classic
from vmimage.offer.manifest import parse_manifest
from vmimage.offer.partner_center import render_partner_center
from vmimage.offer.rules import validate_offer
from vmimage.offer.yamlload import load_yaml
from vmimage.profiles import load_profile

EXAMPLES = int(os.environ.get("VMIMAGE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Loaded in the parent, so that each forked child starts with them.
PROFILES = (load_profile("azure-2015"), load_profile("azure-current"))
GOOD_DATA = load_yaml(GOOD).data
SOURCE = Path("/nonexistent/vmimage-fuzz/offer.yaml")  # relative disk files resolve nowhere

#: Leaves that broke something once, or could: huge integers, surrogates, bidi and control
#: characters, user names in URLs, odd sizes and versions.
BIG = "@@big-integer@@"  # written out as 5,000 bare digits (json cannot write such an int)
HOSTILE = st.sampled_from([
    BIG, "9" * 5000, 10**400, -1, 0, 2**64, "\ud800", "x\udfff", "\u202egpj.exe", "\u2066", "\x1b]0;",
    "\x00", "https://u:p@h.blob.core.windows.net/c/d.vhd", "http://[::1/c/d.vhd",
    "https://h/c/d.vhd?sig=abcdefghijkl", "٣GiB", "1.10", "01.0.0", "0x1F", "", " ", "a" * 10000,
    "../../etc/passwd", "/dev/zero", "~root/x.vhd", True, None, [], {}, "gen3", "linux",
])
LEAVES = st.one_of(HOSTILE, st.text(max_size=40), st.integers(), st.booleans(), st.none())


def _mutate(value: object, data: st.DataObject, depth: int = 0) -> object:
    """``value`` with some leaves (and now and then a whole subtree) replaced."""
    if depth > 0 and data.draw(st.integers(0, 9)) == 0:
        return data.draw(LEAVES)
    if isinstance(value, dict):
        out = {k: _mutate(v, data, depth + 1) for k, v in value.items()
               if data.draw(st.integers(0, 19)) != 0}  # drop a key now and then
        if data.draw(st.integers(0, 9)) == 0:
            out[data.draw(st.sampled_from(["extra", "id", "url", "lun", "<<"]))] = \
                data.draw(LEAVES)
        return out
    if isinstance(value, list):
        items = [_mutate(v, data, depth + 1) for v in value]
        if items and data.draw(st.integers(0, 4)) == 0:
            items.append(items[0])  # a duplicate SKU, version or disk
        return items
    return data.draw(LEAVES) if data.draw(st.integers(0, 5)) == 0 else value


def _as_yaml(value: object) -> str:
    """JSON is YAML 1.2; ``\\uXXXX`` escapes carry surrogates and controls through."""
    return json.dumps(value, default=str).replace(f'"{BIG}"', "9" * 5000)


def _everything(text: str) -> None:
    """Load, validate under both profiles, and render both formats when the manifest loads."""
    loaded = parse_manifest(text, SOURCE)
    for profile in PROFILES:
        findings = validate_offer(loaded, profile, probe=None)
        assert findings, "every manifest gets findings"
        for f in findings:
            assert "\n" not in f.check_id
    if loaded.manifest is not None:
        classic = render_classic(loaded.manifest)
        for body in classic.documents.values():
            body.encode("utf-8")  # a lone surrogate would raise here
        render_partner_center(loaded.manifest, None)


@FUZZ
@given(st.data())
def test_mutated_manifests_load_validate_and_render(data: st.DataObject) -> None:
    text = _as_yaml(_mutate(GOOD_DATA, data))
    ending = run_bounded(lambda: _everything(text))
    assert ending.ok, (ending, text[:2000])


@FUZZ
@given(st.one_of(
    st.text(max_size=500),
    st.lists(st.sampled_from(GOOD.splitlines()) | st.text(max_size=40), max_size=40)
      .map("\n".join),
    st.builds(lambda a, b: GOOD.replace(a, b, 1),
              st.sampled_from(["contoso-web", "Contoso Web Server", '"1.0.0"', "lun: 0",
                               "gen1", "https://", "debian", "Standard_D2s_v5", ": ", "- ",
                               "{", "\n"]),
              st.one_of(HOSTILE.map(str), st.text(max_size=20))),
    st.builds(lambda key, b: GOOD.replace(f"{key}: ", f"{key}: {b} #", 1),
              st.sampled_from(["lun", "title", "id", "version", "container_url", "plan"]),
              st.one_of(st.sampled_from(["9" * 5000, '"\\ud800"', '"\\u202e x"', "0x" + "f" * 999,
                                         "!!int 1", "&a [*a]", '"\\e]0;"']),
                        st.text(max_size=20))),
))
def test_manifest_text_never_raises_but_the_typed_error(text: str) -> None:
    ending = run_bounded(lambda: _everything(text))
    assert ending.ok, (ending, text[:2000])


JSON_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
                    | st.sampled_from(["\x85", "\u2028", "\u2029", "\x7f", "\x9f", "\ufeff",
                                       "\n", "\t", "\\", '"', "#", "-", ":", "~", "é"]),
                    max_size=12) | st.sampled_from(["null", "yes", "~", ".inf", "0x1F", "1_000",
                                                    "- x", "a: b", "1.0", "-0"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False)
    | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4),
    max_leaves=30)


@FUZZ
@given(JSON_VALUES)
def test_indented_json_reads_as_the_yaml_reader_reads_it(data: object) -> None:
    """The service's rendered manifests (``json.dumps(indent=2)``) are read by a JSON fast
    path: it must give exactly the data and lines of the YAML event reader (the oracle), or
    step aside (None) for any text that reader would read otherwise or refuse."""
    from vmimage.offer.yamlload import YamlSyntaxError, load_indented_json, load_yaml_events

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    fast = load_indented_json(text)
    try:
        slow = load_yaml_events(text)
    except YamlSyntaxError:
        assert fast is None
        return
    if fast is not None:
        assert fast.data == slow.data
        assert fast.lines == slow.lines


def test_a_rendered_offer_takes_the_json_path() -> None:
    """What the service renders (a whole offer as indented JSON) is read fast, and the same."""
    from vmimage.offer.yamlload import load_indented_json, load_yaml_events

    text = json.dumps(GOOD_DATA, indent=2, ensure_ascii=False) + "\n"
    fast = load_indented_json(text)
    assert fast is not None
    slow = load_yaml_events(text)
    assert fast.data == slow.data and fast.lines == slow.lines
    assert load_indented_json(GOOD) is None  # the YAML file itself: the event reader's
