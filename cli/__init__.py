"""The `stocklake` command line: sits on top of the stages and wires them."""
