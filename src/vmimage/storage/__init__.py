"""Azure Storage: upload VHDs as page blobs, make and verify the SAS URIs a submission needs.

The Azure SDK is imported lazily inside the functions that talk to a service, so importing
this package (and running the offline checks) stays fast. Every message that may carry a URL
or an exception from the SDK goes through :func:`vmimage.secrets.redact` first.
"""
