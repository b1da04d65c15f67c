"""Drafting data files (installed as ``reportgen.data``): ``models.json``, the model families."""
