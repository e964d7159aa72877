"""The Windows OS-disk rules (certification-research.md §2, the guide's WIN-* requirements).

They read the Windows volume that the image target mounts at ``/`` (case-insensitive paths),
through the facts of :mod:`vmimage.facts.windows`: the SYSTEM and SOFTWARE hives, file versions
of system drivers, Task Scheduler's task files, sysprep's logs, and the boot sectors of the
disk's volumes.
"""
