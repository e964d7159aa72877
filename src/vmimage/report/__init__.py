"""Render findings and disk reports: checks never print, formatters do."""
