"""stocklake's shared core: settings, record schemas and the lake layout.

Every stage imports only this package; this package imports no other part
of the project.
"""

__version__ = "0.1.0"
