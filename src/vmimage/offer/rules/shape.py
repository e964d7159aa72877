"""OFFER-MANIFEST: the manifest (and the previously published one) can be read at all.

The loader returns typed problems (:class:`~vmimage.offer.manifest.ManifestProblem`) and
knows nothing of rules; this rule turns them into its one finding, so a manifest with a YAML
error, an unknown key and a wrong type fails one rule with three pieces of evidence.
"""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.findings import Outcome, Severity, violated
from vmimage.offer.rules.context import OfferContext
from vmimage.rules import rule


@rule(subject="manifest", os="any", id="OFFER-MANIFEST",
      title="The manifest is well-formed: known keys, right types, files that exist",
      severity=Severity.FAIL, covers=("OFR-PARENT",),
      remediation="Fix the key at the line shown; docs/offer.md lists every key.")
def manifest_shape(ctx: OfferContext) -> Iterator[Outcome]:
    """Every other offer rule reads the model; none can run on a manifest that has none."""
    sources = [ctx.loaded] + ([ctx.previous] if ctx.previous is not None else [])
    for loaded in sources:
        for problem in loaded.problems:
            yield violated(problem.message, problem.evidence)
