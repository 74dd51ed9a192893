"""The ``sealrelay`` command-line tool: dispatches to the node, client and admin commands."""
