"""The `envoy2mqtt` command: run, demo, token, health, topics, discover, addon-run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from envoy2mqtt import __version__
from envoy2mqtt.settings import ConfigError, Settings, load_settings
from envoy2mqtt.settings.flags import HelpFormatter, add_setting_flags, setting_overrides

SEE_RUN = (
    "Every setting of `envoy2mqtt run --help` applies here too, as a flag, an environment "
    "variable or a line in ./.env."
)
# what each command other than `run` reads; their other setting flags work but are not listed
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "demo": ("mqtt_host", "mqtt_port", "mqtt_username", "mqtt_password_file", "mqtt_base_topic"),
    "token": (
        "envoy_host",
        "envoy_serial",
        "envoy_username",
        "envoy_password_file",
        "envoy_token_file",
        "state_dir",
    ),
    "health": ("state_dir", "health_gateway_grace"),
}


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="envoy2mqtt",
        description="Local bridge from Enphase Envoy / IQ Gateways to MQTT and Home Assistant.",
    )
    parser.add_argument("--version", action="version", version=f"envoy2mqtt {__version__}")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser(
        "run",
        help="run the bridge (the default)",
        formatter_class=HelpFormatter,
        usage="envoy2mqtt run [--SETTING VALUE ...]",
        description="Run the bridge. Each setting is a flag, an environment variable "
        "(--mqtt-host is MQTT_HOST) or a line in ./.env; flags win. A yes/no flag alone "
        "turns it on (--shedding-dry-run); --no-shedding-dry-run turns it off.",
    )
    add_setting_flags(run, None)
    demo = commands.add_parser(
        "demo",
        help="run against the built-in simulated gateway, with a broker if none is set",
        formatter_class=HelpFormatter,
        epilog=SEE_RUN,
    )
    demo.add_argument(
        "--capture",
        default="8.2.4286_with_3cts_and_battery_split",
        help="which real capture the simulated gateway replays (default: %(default)s)",
    )
    demo.add_argument("--list-captures", action="store_true", help="list the captures and exit")
    demo.add_argument(
        "--duration",
        type=float,
        default=0,
        metavar="SECONDS",
        help="stop after this long (0: never)",
    )
    demo.add_argument(
        "--until-values",
        type=int,
        default=0,
        metavar="N",
        help="stop once the gateway's first N values arrived (0: never)",
    )
    demo.add_argument("--quiet", action="store_true", help="do not print the topics")
    demo.add_argument(
        "--field",
        action="store_true",
        help="the simulated gateway behaves as current firmware does in the field: pages that "
        "take up to a minute, the relay's real states, battery noise (see docs/simulator.md)",
    )
    add_setting_flags(demo, COMMAND_SETTINGS["demo"])
    token = commands.add_parser(
        "token",
        help="obtain or check a token and print its status",
        formatter_class=HelpFormatter,
        epilog=SEE_RUN,
    )
    token.add_argument("--show", action="store_true", help="also print the token itself")
    token.add_argument("--renew", action="store_true", help="obtain a fresh token from Enlighten")
    add_setting_flags(token, COMMAND_SETTINGS["token"])
    health = commands.add_parser(
        "health",
        help="exit 0 if the bridge published recently",
        formatter_class=HelpFormatter,
        epilog=SEE_RUN,
    )
    health.add_argument(
        "--max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail when nothing was published this long (default: 2 x HEARTBEAT_INTERVAL + 60)",
    )
    add_setting_flags(health, COMMAND_SETTINGS["health"])
    topics = commands.add_parser("topics", help="print the topic reference (Markdown)")
    topics.add_argument(
        "--readme",
        type=Path,
        metavar="FILE",
        help="rewrite the reference block in this file (it lives in docs/topics.md)",
    )
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
        settings = load_settings(**setting_overrides(args))
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
            from envoy2mqtt.token_command import token_command

            return asyncio.run(token_command(settings, show=args.show, renew=args.renew))
        if command == "demo":
            from envoy2mqtt.demo import demo

            return asyncio.run(
                demo(
                    settings,
                    args.capture,
                    duration=args.duration,
                    quiet=args.quiet,
                    until_values=args.until_values,
                    field=args.field,
                )
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
