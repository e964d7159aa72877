"""A local stand-in for "deploy a VM from the image": qemu, driven from the disk itself.

An adapter over ``qemu-system-x86_64`` used by :mod:`vmimage.app.vm`: what to boot and with
which firmware (:mod:`.disk`), which accelerator (:mod:`.accel`), the command line
(:mod:`.qemu`), a keeper process that kills qemu if vmimage dies during boot (:mod:`.keeper`),
readiness (:mod:`.wait`) and the per-VM state directory (:mod:`.state`). Nothing here prints.
"""
