"""The publishing service over HTTP (``vmimage serve``, issue 14): thin routers that parse a
request, call the application layer (``vmimage.app.publishing``) and render its answer as
JSON. No rule, state or record is known here."""
