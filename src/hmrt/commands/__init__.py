"""hmrt.commands: subcommands that orchestrate several layers (runtime, train, calib, export).

The layers import one way (runtime <- train <- calib <- export) and never import this package;
a command that needs more than one of them (``hmrt eval`` with ``--precision-report``,
``hmrt demo``'s first-run export, ``hmrt bench`` without ``--model``) lives here instead. Like
every subcommand module, each exposes ``add_arguments(parser)`` and ``run(args) -> int`` and
imports heavy packages inside ``run()``.
"""
