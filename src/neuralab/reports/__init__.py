"""Reports: figures (matplotlib) and self-contained HTML pages for runs."""
