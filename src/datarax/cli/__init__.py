"""The ``datarax`` command line (see :func:`datarax.cli.main.main`)."""
