"""A local web page to colorize interactively: ``lit-colorize serve`` (the ``app`` extra).

:func:`~lit_colorize.app.server.create_app` builds the Starlette app around a loaded
:class:`~lit_colorize.Colorizer`; :mod:`lit_colorize.app.serve` is the command.
"""
