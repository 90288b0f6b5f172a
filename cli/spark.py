"""`stocklake spark`: see its issue; filled in by the stage that owns it."""

import typer

app = typer.Typer(help="spark commands", no_args_is_help=True)
