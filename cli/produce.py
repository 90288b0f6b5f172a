"""`stocklake produce`: see its issue; filled in by the stage that owns it."""

import typer

app = typer.Typer(help="produce commands", no_args_is_help=True)
