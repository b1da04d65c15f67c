"""The CLI registry: every command is listed, help is fast and torch-free."""

import subprocess
import sys

from reportgen.cli import COMMANDS
from tests.light_imports import heavy_modules_loaded


def test_help_lists_every_command_without_heavy_imports():
    code = "from reportgen.cli import build_parser; build_parser(['--help']).format_help()"
    assert heavy_modules_loaded(code, ("torch", "transformers", "open_clip", "vllm", "spacy")) == []
    help_text = subprocess.run([sys.executable, "-m", "reportgen", "--help"], capture_output=True, text=True).stdout
    for name in COMMANDS:
        assert name in help_text


def test_every_registered_command_module_exists_and_has_the_interface():
    import importlib

    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.run), name
