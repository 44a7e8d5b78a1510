"""CLI commands that live in their own module; see ``tritongen.cli.LAZY_COMMANDS``."""
