"""The publishing service's use cases (issue 14): publishers and tokens, offers, SKUs, plans,
image versions and their SAS URIs, certification requests, reports, and the states an image
version goes through, every manifest rule judged by the one registry (``vmimage offer
validate``'s code).

The HTTP routers (``vmimage.service``) and the CLI call these modules; they in turn are the
only callers of the records (``vmimage.catalog``). Importing this package loads nothing:
``vmimage offer push`` needs only :mod:`.client`, not SQLAlchemy.
"""
