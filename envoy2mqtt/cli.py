"""The `envoy2mqtt` command: run, demo, token, health, topics, discover, addon-run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic.fields import FieldInfo

from envoy2mqtt import __version__
from envoy2mqtt.settings import ConfigError, Settings, load_settings

SKIP_FLAGS = frozenset({"gateways"})


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, e.g. --mqtt-host for MQTT_HOST; flags override the environment."""
    group = parser.add_argument_group("settings (each also an environment variable)")
    for name, field in Settings.model_fields.items():
        if name in SKIP_FLAGS:
            continue
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, dest=f"setting_{name}", metavar=name.upper(), help=_help(field))


def _help(field: FieldInfo) -> str:
    """The setting's own description, its default, and for a secret where to keep it."""
    text = (field.description or "").replace("%", "%%")  # argparse formats help with %
    if field.annotation is not None and "SecretStr" in str(field.annotation):
        return f"{text} (a secret: prefer the environment or a *_FILE)"
    default = field.get_default(call_default_factory=True)
    if default is None or default in ("", []):
        return f"{text} (default: unset)"
    if isinstance(default, bool):
        default = str(default).lower()
    elif isinstance(default, list):
        default = ",".join(str(item) for item in default)
    return f"{text} (default: {default})"


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in vars(args).items():
        if key.startswith("setting_") and value is not None:
            out[key.removeprefix("setting_")] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="envoy2mqtt",
        description="Local bridge from Enphase Envoy / IQ Gateways to MQTT and Home Assistant.",
    )
    parser.add_argument("--version", action="version", version=f"envoy2mqtt {__version__}")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run the bridge (the default)")
    _add_setting_flags(run)
    demo = commands.add_parser(
        "demo", help="run against the built-in simulated gateway, with a broker if none is set"
    )
    demo.add_argument(
        "--capture",
        default="8.2.4286_with_3cts_and_battery_split",
        help="which real capture the simulated gateway replays (default: %(default)s)",
    )
    demo.add_argument("--list-captures", action="store_true", help="list the captures and exit")
    demo.add_argument("--duration", type=float, default=0, help="stop after N seconds (0: never)")
    demo.add_argument("--quiet", action="store_true", help="do not print the topics")
    _add_setting_flags(demo)
    token = commands.add_parser("token", help="obtain or check a token and print its status")
    token.add_argument("--show", action="store_true", help="also print the token itself")
    token.add_argument("--renew", action="store_true", help="obtain a fresh token from Enlighten")
    _add_setting_flags(token)
    health = commands.add_parser("health", help="exit 0 if the bridge published recently")
    health.add_argument("--max-age", type=float, default=None)
    _add_setting_flags(health)
    topics = commands.add_parser("topics", help="print the topic reference (Markdown)")
    topics.add_argument("--readme", type=Path, help="rewrite the reference block in this README")
    discover = commands.add_parser("discover", help="list the gateways found on the LAN by mDNS")
    discover.add_argument("--timeout", type=float, default=5.0, help="seconds to listen (5)")
    discover.add_argument(
        "--interfaces", default="", help="comma-separated interface addresses (default: all)"
    )
    commands.add_parser("addon-run", help="start as a Home Assistant add-on (/data/options.json)")
    return parser


START, END = "<!-- topic-reference:start -->", "<!-- topic-reference:end -->"


def with_reference(readme: str, reference: str) -> str:
    """The README with its generated topic-reference block replaced."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference.strip()}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        if command == "topics":
            return _topics(args.readme)
        if command == "discover":
            return asyncio.run(_discover(args.timeout, args.interfaces))
        if command == "addon-run":
            return _addon()
        if command == "demo" and args.list_captures:
            from envoy2mqtt.sim import list_captures

            return _print("\n".join(list_captures()))
        settings = load_settings(**_overrides(args))
        _configure_logging(settings.log_level)
        if command == "health":
            from envoy2mqtt.healthcheck import check_health

            ok, message = check_health(
                settings.state_dir,
                args.max_age or 2 * settings.heartbeat_interval + 60,
                settings.health_gateway_grace,
            )
            print(message)
            return 0 if ok else 1
        if command == "token":
            from envoy2mqtt.auth.command import token_command

            return asyncio.run(token_command(settings, show=args.show, renew=args.renew))
        if command == "demo":
            from envoy2mqtt.demo import demo

            return asyncio.run(
                demo(settings, args.capture, duration=args.duration, quiet=args.quiet)
            )
        return asyncio.run(_run(settings))
    except ConfigError as err:
        print(f"envoy2mqtt: configuration error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _topics(readme: Path | None) -> int:
    from envoy2mqtt.mqtt.reference import topic_reference

    if readme is None:
        return _print(topic_reference())
    text = readme.read_text(encoding="utf-8")
    readme.write_text(with_reference(text, topic_reference()), encoding="utf-8")
    return 0


def _print(text: str) -> int:
    """Print to stdout; a reader that went away (`| head`) ends the command quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # stdout is gone: point it at devnull so the interpreter's final flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _discover(timeout: float, interfaces: str) -> int:
    """`envoy2mqtt discover`: one line per gateway found (serial, address, firmware)."""
    from envoy2mqtt.gateway.finder import discover

    found = await discover(timeout, [part for part in interfaces.split(",") if part.strip()])
    if not found:
        print(
            f"no gateway announced itself by mDNS within {timeout:.0f} s: is this machine on "
            "the gateway's LAN (Docker: network_mode host)? Otherwise set ENVOY_HOST",
            file=sys.stderr,
        )
        return 1
    lines = [f"{'SERIAL':<14} {'ADDRESS':<22} FIRMWARE"]
    lines += [f"{f.serial:<14} {f.host:<22} {f.firmware or '?'}" for f in found]
    return _print("\n".join(lines))


def _addon() -> int:
    """`envoy2mqtt addon-run`: the add-on's options and the Supervisor's broker, then run."""
    from envoy2mqtt.addon import addon_startup

    startup = asyncio.run(addon_startup())
    _configure_logging(startup.settings.log_level)
    startup.report()
    return asyncio.run(_run(startup.settings))


async def _run(settings: Settings) -> int:
    from envoy2mqtt.app import App, install_signal_handlers

    app = App(settings)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await app.run(stop)
    return 0


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "DEBUG":
        logging.getLogger("pyenphase").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
