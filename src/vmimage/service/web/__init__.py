"""The publishing portal (issue 15): server-rendered pages of ``vmimage serve`` under
``/portal``: Jinja2 templates and one stylesheet shipped in the package (no build step, no
CDN), plain forms that work without JavaScript, a session cookie and a CSRF token on every
form. Thin: each page calls the application layer (:mod:`vmimage.app.publishing`)."""
