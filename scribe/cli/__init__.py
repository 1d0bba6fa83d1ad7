"""`python -m scribe COMMAND ...`: the command-line face of the library.

Every command builds Settings from the environment plus its flags, and turns the library's
named errors into one clear line on stderr and a non-zero exit. The package:

- `main`: `main()`, `build_parser()`, and `COMMAND_GROUPS`, the one list of command modules.
- one module per command group, each with `register(sub)`: `transcribe` (transcribe, retry),
  `sessions` (sessions, export, search, summarize, delete), `speakers`, `evaluate` (eval),
  `bench`, `worker`, `models`. A command's parser sets `func` and, if it opens the database,
  `remote`: its twin through the running app's API, kept beside it in the same module.
- `common`: settings from flags, the database, argument types, output files, the progress line.
- `printers`: every result printed from plain data (rows, dicts), so a command and its API twin
  print the same bytes.
- `remote`: finding the app that holds the database and what the twins share.

Adding a command: a `_add_x(sub)` + `cmd_x(args)` (+ `x_through_api(args, client)`) in the
group's module (or a new module listed in `main.COMMAND_GROUPS`), and a README section
`### \\`x\\`` naming every flag (tests/test_docs.py checks it).
"""

from scribe.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
