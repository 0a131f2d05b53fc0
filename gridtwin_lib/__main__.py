"""``python -m gridtwin_lib``: the ``gridtwin`` command (what a pipeline's ``then`` steps run)."""

from .cli import main

main()
