"""Render findings and disk reports: checks never print, formatters do."""

#: Report formats ``vmimage check --format`` accepts (kept here so the CLI imports no renderer).
FORMATS = ("text", "json", "junit", "sarif", "html")
