"""Byte-level disk images: the VHD format, sparse files, conversion and validation."""
