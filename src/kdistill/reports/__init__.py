"""Reports: Markdown, JSON and PNG plots written from an experiment's results."""
