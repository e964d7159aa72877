"""The use cases: the only layer that combines the rule families, storage, offers and reports.

The CLI (and later the service) calls only this package: check a target
(:mod:`.check`), validate a disk or an upload (:mod:`.disk`), verify SAS URIs (:mod:`.sas`),
validate and certify an offer (:mod:`.offer`, :mod:`.certify`), list rules
(:mod:`.catalog`). Each use case loads its profile through :func:`.catalog.profile`, which
validates it against the one registry once every rule module is registered.
"""
