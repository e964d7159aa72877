"""Targets: what checks read. Disk images, mounted root directories, and later live VMs."""
