"""Enlighten's battery-settings service and site directory, as current firmware needs them.

On firmware D8.3 the gateway ignores storage settings written locally (`PUT /admin/lib/tariff`
answers 200 and changes nothing the controller does); what works is the Enlighten battery API
behind the Enphase app's battery screen (mpreissner/ha-enphase-realtime docs/FINDINGS.md, live
tests Sept-Oct 2026; barneyonline/ha-enphase-energy):

- `GET /app-api/search_sites.json` lists the account's sites, `GET /app-api/{site}/devices.json`
  the gateways of one (`serial_num`): how a client finds the site of its gateway's serial.
- `GET /service/batteryConfig/api/v1/batterySettings/{site}` answers the settings and sets the
  `BP-XSRF-Token` cookie (a new one on every GET); `PUT` of the same path takes a partial body
  and must echo that cookie in an `X-XSRF-Token` header. `POST .../acceptDisclaimer/{site}`
  (`{"disclaimer-type": "itc"}`) must come before charge from grid can be turned on.
- A write reaches the gateways about 15 s later (10-20 s in the field); the GET keeps answering
  the old values, the new ones under `requestedConfig` with `pendingGateways`, until the gateway
  next reports in (5-15 min). A write of the profile alone shows in 15-20 s (FINDINGS,
  2026-10-01). `GET .../siteSettings/{site}` says what the site has and the app offers.
- Each profile keeps its own reserve and charge from grid: switching profile brings its values
  back.

What the cloud does to a gateway goes through an `ApplyBatterySettings` callable, so this
module changes no gateway itself; `storage_applier` adapts a `SimulatedGateway`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

if TYPE_CHECKING:
    from .gateway import SimulatedGateway

log = logging.getLogger(__name__)

API: Final = "/service/batteryConfig/api/v1"
LOGIN_PAGE: Final = "/login/login"
XSRF_COOKIE: Final = "BP-XSRF-Token"
XSRF_HEADER: Final = "X-XSRF-Token"
RESERVE_MIN: Final = 5
RESERVE_MAX: Final = 100
VERY_LOW_SOC_MIN: Final = 5
VERY_LOW_SOC_MAX: Final = 25
MINUTES_A_DAY: Final = 24 * 60
# keys a real client sends along that only echo what the app shows
ECHOED_KEYS: Final = frozenset({"acceptedItcDisclaimer"})
AMERICAS_AND_OCEANIA: Final = frozenset({"US", "CA", "MX", "PR", "AU", "NZ"})


class Profile(StrEnum):
    """A battery profile as the cloud names it."""

    SELF_CONSUMPTION = "self-consumption"
    COST_SAVINGS = "cost_savings"  # "Savings" in the app, "economy" on the gateway
    BACKUP_ONLY = "backup_only"  # "Full Backup"


# the gateway's tariff `storage_settings.mode` for each profile (pyenphase's EnvoyStorageMode)
GATEWAY_MODES: Final[Mapping[Profile, str]] = {
    Profile.SELF_CONSUMPTION: "self-consumption",
    Profile.COST_SAVINGS: "economy",
    Profile.BACKUP_ONLY: "backup",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileValues:
    """What one profile keeps for itself: its reserve (%) and whether it charges from grid."""

    reserve: int
    charge_from_grid: bool = False


def default_profiles() -> dict[Profile, ProfileValues]:
    """The values of a new site: 30 % reserve, Full Backup 100 %, no charging from grid."""
    return {
        Profile.SELF_CONSUMPTION: ProfileValues(reserve=30),
        Profile.COST_SAVINGS: ProfileValues(reserve=30),
        Profile.BACKUP_ONLY: ProfileValues(reserve=100),
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class BatterySettingsChange:
    """What a gateway is told after a write: the site's whole battery settings from then on."""

    profile: Profile
    reserve: int  # batteryBackupPercentage of the profile: the tariff's `reserved_soc`
    charge_from_grid: bool
    very_low_soc: int  # the shutdown level: secctrl `VLS_Limit` on the gateway

    @property
    def gateway_mode(self) -> str:
        """The gateway's storage mode for the profile (`backup`, `self-consumption`, `economy`)."""
        return GATEWAY_MODES[self.profile]


ApplyBatterySettings = Callable[[str, BatterySettingsChange], None]
"""Called with a gateway serial and the settings the cloud pushed to that gateway."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BatterySettings:
    """A site's battery settings as the cloud holds them."""

    profile: Profile = Profile.SELF_CONSUMPTION
    profiles: Mapping[Profile, ProfileValues] = field(default_factory=default_profiles)
    very_low_soc: int = 10
    charge_begin: int = 120  # minutes after midnight, site time
    charge_end: int = 300
    schedule_enabled: bool = False

    @property
    def current(self) -> ProfileValues:
        """The active profile's values."""
        return self.profiles[self.profile]

    def change(self) -> BatterySettingsChange:
        """These settings as a gateway applies them."""
        return BatterySettingsChange(
            profile=self.profile,
            reserve=self.current.reserve,
            charge_from_grid=self.current.charge_from_grid,
            very_low_soc=self.very_low_soc,
        )

    def document(self) -> dict[str, Any]:
        """The settings fields of the batterySettings GET."""
        return {
            "profile": str(self.profile),
            "batteryBackupPercentage": self.current.reserve,
            "chargeFromGrid": self.current.charge_from_grid,
            "chargeFromGridScheduleEnabled": self.schedule_enabled,
            "chargeBeginTime": self.charge_begin,
            "chargeEndTime": self.charge_end,
            "veryLowSoc": self.very_low_soc,
            "veryLowSocMin": VERY_LOW_SOC_MIN,
            "veryLowSocMax": VERY_LOW_SOC_MAX,
            "batteryBackupPercentageMin": RESERVE_MIN,
            "batteryBackupPercentageMax": RESERVE_MAX,
            "previousBatteryBackupPercentage": {
                str(profile): values.reserve for profile, values in self.profiles.items()
            },
        }


class BadSetting(ValueError):
    """A write the service refuses (answered 400)."""


def _percent(body: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadSetting(f"{key} must be a whole number from {low} to {high}")
    return value


def _flag(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadSetting(f"{key} must be true or false")
    return value


def _minute(body: Mapping[str, Any], key: str) -> int | None:
    return _percent(body, key, 0, MINUTES_A_DAY - 1)


KNOWN_KEYS: Final = frozenset(
    {"profile", "batteryBackupPercentage", "chargeFromGrid", "veryLowSoc"}
    | {"chargeBeginTime", "chargeEndTime", "chargeFromGridScheduleEnabled"}
    | ECHOED_KEYS
)


def updated(
    settings: BatterySettings, body: object, *, disclaimer_accepted: bool
) -> tuple[BatterySettings, dict[str, Any]]:
    """Settings after a partial PUT, and what the GET shows under `requestedConfig`.

    A profile switch brings that profile's own reserve and charge from grid; a reserve or
    charge from grid in the same body then lands on the new profile.
    """
    if not isinstance(body, dict) or not body:
        raise BadSetting("expected a JSON object with the settings to change")
    unknown = sorted(set(body) - KNOWN_KEYS)
    if unknown:
        raise BadSetting(f"unknown setting {', '.join(unknown)}")
    requested: dict[str, Any] = {}
    profile = settings.profile
    if "profile" in body:
        try:
            profile = Profile(body["profile"])
        except ValueError:
            raise BadSetting(f"profile must be one of {', '.join(Profile)}") from None
        requested["profile"] = str(profile)
    values = settings.profiles[profile]
    reserve = _percent(body, "batteryBackupPercentage", RESERVE_MIN, RESERVE_MAX)
    charge = _flag(body, "chargeFromGrid")
    if charge and not disclaimer_accepted:
        raise BadSetting("accept the disclaimer (acceptDisclaimer) before charging from grid")
    values = ProfileValues(
        reserve=values.reserve if reserve is None else reserve,
        charge_from_grid=values.charge_from_grid if charge is None else charge,
    )
    if "profile" in body or reserve is not None or charge is not None:
        requested["batteryBackupPercentage"] = values.reserve
        requested["chargeFromGrid"] = values.charge_from_grid
    very_low = _percent(body, "veryLowSoc", VERY_LOW_SOC_MIN, VERY_LOW_SOC_MAX)
    begin, end = _minute(body, "chargeBeginTime"), _minute(body, "chargeEndTime")
    scheduled = _flag(body, "chargeFromGridScheduleEnabled")
    new = replace(
        settings,
        profile=profile,
        profiles={**settings.profiles, profile: values},
        very_low_soc=settings.very_low_soc if very_low is None else very_low,
        charge_begin=settings.charge_begin if begin is None else begin,
        charge_end=settings.charge_end if end is None else end,
        schedule_enabled=settings.schedule_enabled if scheduled is None else scheduled,
    )
    echoed = {
        "veryLowSoc": very_low,
        "chargeBeginTime": begin,
        "chargeEndTime": end,
        "chargeFromGridScheduleEnabled": scheduled,
    }
    requested.update({key: value for key, value in echoed.items() if value is not None})
    return new, requested


@dataclass(frozen=True, kw_only=True, slots=True)
class CloudSite:
    """One Enlighten site: its id, name, owner's e-mail and the serials of its gateways."""

    site_id: int
    serials: tuple[str, ...]
    owner: str = "owner@example.com"
    title: str = ""
    country: str = "US"
    timezone: str = "US/Eastern"
    settings: BatterySettings = field(default_factory=BatterySettings)


@dataclass(frozen=True, kw_only=True, slots=True)
class BatteryTiming:
    """The service's delays in real seconds (the field's figures), before `time_scale`."""

    apply_after: float = 15.0  # a write reaches the gateways in 10-20 s
    report_after: float = 600.0  # the cloud's own view catches up in 5-15 min
    profile_report_after: float = 20.0  # ... but a profile switch alone shows in 15-20 s


@dataclass(frozen=True, slots=True)
class Delivery:
    """Settings the cloud pushed to one gateway, and when (the cloud's clock)."""

    at: float
    serial: str
    change: BatterySettingsChange


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedIn:
    """Who a request comes from: the account's e-mail, its user id and its session."""

    email: str
    user_id: int
    session: str


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SiteBattery:
    """One site's settings: what the cloud reports, what it was asked, what is pending."""

    def __init__(self, site: CloudSite) -> None:
        """Start with the site's settings reported and nothing pending."""
        self.site = site
        self.reported = site.settings
        self.target = site.settings
        self.requested: dict[str, Any] = {}
        self.disclaimer: str | None = None
        self.generation = 0

    def document(self, now: float) -> dict[str, Any]:
        """The batterySettings GET body."""
        requested = dict(self.requested)
        if requested:
            requested["pendingGateways"] = list(self.site.serials)
        data: dict[str, Any] = {
            "supportsMqtt": False,
            "drEventActive": False,
            **self.reported.document(),
            "requestedConfig": requested,
            "acceptedItcDisclaimer": self.disclaimer,
            "hideChargeFromGrid": False,
            "envoySupportsVls": True,
            "cfgControl": {"show": True, "enabled": self.reported.current.charge_from_grid},
            "systemTask": False,
            "siteProfileStatus": "READY",  # the only value seen; `pendingGateways` tells
        }
        return {"type": "battery-details", "timestamp": _iso(now), "data": data}


class BatteryCloud:
    """The site directory and batteryConfig routes, over sites and an `apply` to the gateways."""

    def __init__(
        self,
        sites: Iterable[CloudSite],
        *,
        apply: ApplyBatterySettings | None,
        signed_in: Callable[[web.Request], SignedIn | None],
        timing: BatteryTiming,
        time_scale: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`signed_in` says who sent a request (None: no valid session)."""
        self.batteries = {site.site_id: SiteBattery(site) for site in sites}
        self.timing = timing
        self.time_scale = time_scale
        self.applied: list[Delivery] = []
        self._apply = apply
        self._signed_in = signed_in
        self._clock = clock
        self._xsrf: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the cloud's app."""
        return [
            web.get("/app-api/search_sites.json", self._search_sites),
            web.get("/app-api/{site}/devices.json", self._devices),
            web.get(API + "/batterySettings/{site}", self._get_settings),
            web.put(API + "/batterySettings/{site}", self._put_settings),
            web.post(API + "/batterySettings/acceptDisclaimer/{site}", self._accept_disclaimer),
            web.get(API + "/siteSettings/{site}", self._site_settings),
        ]

    def battery(self, site_id: int) -> SiteBattery:
        """One site's battery state (for tests to look at)."""
        return self.batteries[site_id]

    async def settle(self) -> None:
        """Cancel pending applies and reports (the cloud is stopping)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- the site directory ----------------------------------------------------------------

    def _sites_of(self, email: str) -> list[CloudSite]:
        return [b.site for b in self.batteries.values() if b.site.owner == email]

    async def _search_sites(self, request: web.Request) -> web.StreamResponse:
        who = self._signed_in(request)
        if who is None:
            return login_wall()
        text = request.query.get("searchText", "").casefold()
        sites = [
            {
                "id": site.site_id,
                "title": site.title or f"Site {site.site_id}",
                "path": f"/web/{site.site_id}?v=3.4.0",
                "favourite": False,
            }
            for site in self._sites_of(who.email)
            if text in f"{site.site_id} {site.title}".casefold()
        ]
        return web.json_response({"sites": sites})

    async def _devices(self, request: web.Request) -> web.StreamResponse:
        found = self._site(request)
        if isinstance(found, web.StreamResponse):
            return found
        devices = [
            {"serial_num": serial, "name": "IQ Gateway", "status": "normal", "active": True}
            for serial in found.site.serials
        ]
        return web.json_response({"result": [{"type": "envoy", "devices": devices}]})

    # -- batteryConfig ---------------------------------------------------------------------

    def _site(self, request: web.Request) -> SiteBattery | web.StreamResponse:
        who = self._signed_in(request)
        if who is None:
            return login_wall()
        raw = request.match_info["site"]
        battery = self.batteries.get(int(raw)) if raw.isdigit() else None
        if battery is None or battery.site.owner != who.email:
            return refusal(request, 403, "Access denied for this site")
        # the app names the user in the query and a header; a wrong one is someone else's
        claimed = request.query.get("userId") or request.headers.get("Username")
        if claimed is not None and claimed != str(who.user_id):
            return refusal(request, 403, "User does not match the session")
        return battery

    async def _get_settings(self, request: web.Request) -> web.StreamResponse:
        found = self._site(request)
        if isinstance(found, web.StreamResponse):
            return found
        response = web.json_response(found.document(self._clock()))
        self._new_xsrf(request, response)
        return response

    async def _site_settings(self, request: web.Request) -> web.StreamResponse:
        found = self._site(request)
        if isinstance(found, web.StreamResponse):
            return found
        site = found.site
        data = {
            "hasEncharge": True,
            "hasEnpower": True,
            "hasAcb": False,
            "countryCode": site.country,
            "region": site.country,
            "locale": "en",
            "timezone": site.timezone,
            "isEmea": site.country not in AMERICAS_AND_OCEANIA,
            "showChargeFromGrid": True,
            "restrictCfg": False,
            "showSavingsMode": True,
            "showFullBackup": True,
            "showBatteryBackupPercentage": True,
            "showVLS": True,
            "isChangePending": bool(found.requested),
            "userDetails": {"isOwner": True, "isInstaller": False, "email": site.owner},
        }
        response = web.json_response(
            {"type": "site-settings", "timestamp": _iso(self._clock()), "data": data}
        )
        self._new_xsrf(request, response)
        return response

    def _new_xsrf(self, request: web.Request, response: web.StreamResponse) -> None:
        who = self._signed_in(request)
        if who is not None:
            token = secrets.token_urlsafe(24)
            self._xsrf[who.session] = token
            response.set_cookie(XSRF_COOKIE, token, path="/")

    def _xsrf_ok(self, request: web.Request) -> bool:
        who = self._signed_in(request)
        expected = self._xsrf.get(who.session) if who is not None else None
        sent = request.headers.get(XSRF_HEADER)
        return expected is not None and sent is not None and secrets.compare_digest(sent, expected)

    async def _accept_disclaimer(self, request: web.Request) -> web.StreamResponse:
        found = self._site(request)
        if isinstance(found, web.StreamResponse):
            return found
        if not self._xsrf_ok(request):
            return refusal(request, 403, "Invalid CSRF token")
        body = await _json(request)
        if not isinstance(body, dict) or body.get("disclaimer-type") != "itc":
            return refusal(request, 400, 'expected {"disclaimer-type": "itc"}')
        found.disclaimer = found.disclaimer or _iso(self._clock())
        return web.json_response({"message": "success"})

    async def _put_settings(self, request: web.Request) -> web.StreamResponse:
        found = self._site(request)
        if isinstance(found, web.StreamResponse):
            return found
        if not self._xsrf_ok(request):
            return refusal(request, 403, "Invalid CSRF token")
        body = await _json(request)
        try:
            target, requested = updated(
                found.target, body, disclaimer_accepted=found.disclaimer is not None
            )
        except BadSetting as err:
            return refusal(request, 400, str(err))
        found.target = target
        found.requested.update(requested)
        found.generation += 1
        self._spawn(self._deliver(found, target.change()))
        alone = isinstance(body, dict) and set(body) == {"profile"}
        report = self.timing.profile_report_after if alone else self.timing.report_after
        self._spawn(self._report(found, found.generation, report))
        log.info("site %s battery settings requested: %s", found.site.site_id, requested)
        return web.json_response(found.document(self._clock()))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, battery: SiteBattery, change: BatterySettingsChange) -> None:
        await asyncio.sleep(self.timing.apply_after * self.time_scale)
        for serial in battery.site.serials:
            self.applied.append(Delivery(self._clock(), serial, change))
            if self._apply is not None:
                try:
                    self._apply(serial, change)
                except Exception:
                    log.exception("applying battery settings to gateway %s failed", serial)

    async def _report(self, battery: SiteBattery, generation: int, after: float) -> None:
        await asyncio.sleep(after * self.time_scale)
        if battery.generation == generation:  # a later write starts its own wait
            battery.reported = battery.target
            battery.requested.clear()


async def _json(request: web.Request) -> object:
    try:
        body: object = await request.json()
    except ValueError:
        return None
    return body


def login_wall() -> web.StreamResponse:
    """How Enlighten answers a request without a valid session: a redirect to its login page."""
    return web.Response(status=302, headers={"Location": LOGIN_PAGE})


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    """An error shaped like the batteryConfig service's (a Spring-style JSON body)."""
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
    body = {
        "timestamp": datetime.now(UTC).isoformat(),
        "status": status,
        "error": reasons.get(status, "Error"),
        "message": message,
        "path": request.path,
    }
    return web.json_response(body, status=status)


def storage_applier(gateways: Iterable[SimulatedGateway]) -> ApplyBatterySettings:
    """An `apply` that changes what simulated gateways' battery controllers run, by serial.

    Through `SimulatedGateway.apply_battery_settings`: the live values change
    (`/ivp/ensemble/secctrl` `configured_backup_soc` and `VLS_Limit`, `/ivp/sc/sched`); on
    firmware that ignores local writes the tariff file keeps its stale copy, on older
    firmware it follows.
    """
    by_serial = {gateway.serial: gateway for gateway in gateways}

    def apply(serial: str, change: BatterySettingsChange) -> None:
        gateway = by_serial.get(serial)
        if gateway is None:
            log.warning("the cloud has no simulated gateway %s to tell", serial)
            return
        gateway.apply_battery_settings(
            mode=change.gateway_mode,
            charge_from_grid=change.charge_from_grid,
            reserve_soc=change.reserve,
            very_low_soc=change.very_low_soc,
        )

    return apply
