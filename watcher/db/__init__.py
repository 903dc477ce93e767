"""The database layer: the only package that issues SQL."""
