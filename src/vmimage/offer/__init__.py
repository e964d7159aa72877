"""The offer layer: ``offer.yaml`` read, validated and rendered (guide §1, §4.1, §5.3).

- :mod:`~vmimage.offer.manifest` reads the manifest (YAML 1.2, lines kept) into
  :mod:`~vmimage.offer.model`, or into typed problems naming file, line and key;
- :mod:`~vmimage.offer.rules` holds every OFR-*/PUB-* rule (``validate_offer``);
- :mod:`~vmimage.offer.urls`, :mod:`~vmimage.offer.classic` and
  :mod:`~vmimage.offer.partner_center` render the public URLs, the guide's Create VM Image
  bodies and Partner Center's plan technical configuration;
- :mod:`~vmimage.offer.sas` keeps SAS tokens out of the manifest and the command line and
  matches them to disks; :mod:`vmimage.secrets` keeps them out of every printed text, and
  :mod:`vmimage.privatefile` writes submissions 0600.

``certify`` runs the checks too, so it is a use case of the application layer
(:mod:`vmimage.app.certify`), above ``checks``, ``storage`` and ``offer`` (rulings).
"""
