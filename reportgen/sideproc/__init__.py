"""Scripts that other interpreters run (``reportgen.pyproc``). Running a script puts its
folder first on that interpreter's sys.path, so this folder holds nothing named like a
standard-library module (``reportgen/types.py`` beside a script would shadow ``types``)."""
