"""The publishing service's records (SQLAlchemy 2 models, Alembic migrations, sealed secrets):
publishers and their API tokens, offers, plans, SKUs, image versions with their disks,
certification requests and stored reports.

Below the application layer: ``vmimage.app.publishing`` holds the use cases and is the only
caller. Nothing here knows HTTP or the offer rules.
"""
