"""Facts about a Windows image, read offline from its OS volume: the registry hives
(:mod:`.registry`), file versions of system binaries (:mod:`.pe`), and what the checks of
certification-research.md §2 need from them (:mod:`.system`)."""
