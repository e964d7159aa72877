"""Background jobs of the publishing service (certification runs; registrations later):
in-process by default, Dramatiq on Redis to scale out, behind one interface
(:func:`~vmimage.jobs.engine.open_engine`).

Each job is recorded (:class:`~vmimage.jobs.model.JobStore`, the service's database): a job
submitted twice with the same key is one job; a job whose process dies is taken over when its
lease expires and runs again, and its effect is applied once; a process runs at most its
configured number of jobs at a time.

This package knows no record, no rule and no HTTP: the application layer
(``vmimage.app.publishing.jobs``) gives it the store and the kinds of job.
"""
