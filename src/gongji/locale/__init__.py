"""Gettext catalogs of the texts people read (msgids in English), and how Babel extracts them (README.md)."""
