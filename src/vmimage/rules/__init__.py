"""The one rule registry and engine every family of rules shares.

``@rule(...)`` registers a rule (:mod:`vmimage.rules.registry`); :func:`run_rules` runs the
selected rules on a family's context and applies the profile (:mod:`vmimage.rules.engine`);
:func:`check_profile` refuses a profile naming an ID no rule has. Rule functions return
:class:`~vmimage.findings.Outcome` values and never print.
"""

from __future__ import annotations

from vmimage.errors import InputError
from vmimage.profiles import Profile
from vmimage.rules.engine import RuleContext, effective_severity, run_rule, run_rules
from vmimage.rules.registry import REGISTRY, RuleMeta, Subject, rule, rules_for

__all__ = ["REGISTRY", "RuleContext", "RuleMeta", "Subject", "check_profile",
           "effective_severity", "rule", "rules_for", "run_rule", "run_rules"]


def check_profile(profile: Profile) -> Profile:
    """``profile`` when every rule ID it names is registered.

    Call it once every rule module is imported (the application layer does).

    Raises:
        InputError: the profile sets a severity for, or disables, an unknown rule ID.
    """
    named = set(profile.severity) | set(profile.disabled)
    unknown = sorted(named - REGISTRY.keys())
    if unknown:
        raise InputError(f"profile {profile.name}", f"names unknown rule ID(s) "
                                                    f"{', '.join(unknown)}")
    return profile
