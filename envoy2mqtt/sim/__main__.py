"""Run one simulated gateway until Ctrl-C: `python -m envoy2mqtt.sim --capture NAME`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from .capture import list_captures
from .field import Field
from .gateway import SimulatedGateway


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m envoy2mqtt.sim", description=__doc__)
    parser.add_argument("--capture", default="7.6.175_with_cts", help="capture folder or path")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = free)")
    parser.add_argument("--drift", action="store_true", help="let the numbers move over time")
    field = parser.add_mutually_exclusive_group()
    field.add_argument(
        "--field", action="store_true", help="behave as the real gateway on D8.3.6086 (slow)"
    )
    field.add_argument(
        "--field-moderate", action="store_true", help="the field's behaviour, pages in seconds"
    )
    parser.add_argument("--list", action="store_true", help="list bundled captures and exit")
    return parser.parse_args(argv)


def field_of(args: argparse.Namespace) -> Field:
    """The field behaviour the options ask for."""
    if args.field:
        return Field.current_firmware()
    if args.field_moderate:
        return Field.moderate()
    return Field.off()


async def serve(capture: str, port: int, *, drift: bool, field: Field | None = None) -> None:
    """Start the gateway, describe it on stdout, and serve until cancelled."""
    field = field if field is not None else Field.off()
    async with SimulatedGateway(capture=capture, port=port, drift=drift, field=field) as gateway:
        lines = [
            f"host      {gateway.host}",
            f"url       {gateway.url}",
            f"serial    {gateway.serial}",
            f"firmware  {gateway.firmware}",
        ]
        if field != Field.off():
            lines.append("field     on (the real gateway's timing and quirks)")
        if gateway.uses_tls:
            # Simulated credential for a simulated gateway: printing it is the point.
            lines.append(f"token     {gateway.make_token()}")
        else:
            lines.append(f"digest    envoy / {gateway.legacy_password('envoy')}")
        sys.stdout.write("\n".join(lines) + "\nCtrl-C to stop\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    if args.list:
        sys.stdout.write("\n".join(list_captures()) + "\n")
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.capture, args.port, drift=args.drift, field=field_of(args)))


if __name__ == "__main__":
    main()
