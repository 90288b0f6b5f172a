"""Write .env for the Docker stack: .env.example's lines, with every empty secret that
docker-compose.yml requires (`${VAR:?...}`) filled with a fresh random value.

    python3 infra/docker/make_env.py [--example FILE] [--env FILE] [--compose FILE]

Values already in .env are kept (so are its extra lines); only missing or empty required
variables are added. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?")


def fernet_key() -> str:
    """A Fernet key as Airflow expects it: 32 random bytes, url-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def random_secret() -> str:
    """32 url-safe characters: safe inside connection URLs and shell values."""
    return secrets.token_urlsafe(24)


def generator_for(name: str) -> Callable[[], str]:
    return fernet_key if name.endswith("FERNET_KEY") else random_secret


def required_variables(compose_text: str) -> set[str]:
    """Variables the compose file refuses to run without (`${VAR:?message}`)."""
    code = "\n".join(
        line for line in compose_text.splitlines() if not line.lstrip().startswith("#")
    )
    return set(_REQUIRED.findall(code))


def env_values(text: str) -> dict[str, str]:
    """NAME=value assignments of an env file (last one wins, quotes stripped)."""
    values = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            values[match.group(1)] = match.group(2).strip().strip("'\"")
    return values


def fill_env(example: str, current: str | None, required: set[str]) -> tuple[str, list[str]]:
    """The new .env text and the names given a generated value.

    Starts from the current .env when there is one, else from the example; appends any
    required variable that is missing and fills any that is empty.
    """
    base = current if current is not None else example
    known = env_values(base)
    generated: list[str] = []
    lines = []
    for line in base.splitlines():
        match = _ASSIGNMENT.match(line)
        name = match.group(1) if match else None
        if name in required and not known.get(name):
            line = f"{name}={generator_for(name)()}"
            generated.append(name)
            known[name] = "generated"
        lines.append(line)
    example_values = env_values(example)
    missing = sorted(name for name in required if name not in known)
    if missing:
        lines.append("")
        lines.append("# Added by infra/docker/make_env.py for docker-compose.yml")
        for name in missing:
            value = example_values.get(name) or generator_for(name)()
            if not example_values.get(name):
                generated.append(name)
            lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n", generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--env", type=Path, default=ROOT / ".env")
    parser.add_argument("--compose", type=Path, default=ROOT / "docker-compose.yml")
    args = parser.parse_args(argv)
    for path in (args.example, args.compose):
        if not path.is_file():
            print(f"make_env: {path} not found", file=sys.stderr)
            return 1
    current = args.env.read_text() if args.env.exists() else None
    text, generated = fill_env(
        args.example.read_text(), current, required_variables(args.compose.read_text())
    )
    args.env.write_text(text)
    args.env.chmod(0o600)
    action = "updated" if current is not None else "written"
    names = ", ".join(generated) if generated else "none needed"
    print(f"{args.env} {action}; generated: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
