"""The proxy task (`task`: train a shrunk candidate briefly, return its accuracy) and proxy jobs for a
fixed list of models (`jobs`, run by the configured executor)."""
