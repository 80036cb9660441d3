"""Home Assistant's own REST and websocket APIs, as its frontend uses them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Self

import aiohttp

USER: Final = {"name": "Test", "username": "test", "password": "test-password-1", "language": "en"}


class HaApiError(RuntimeError):
    """Home Assistant answered a call with an error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HomeAssistantApi:
    """REST and websocket calls to one Home Assistant, authenticated with a long-lived token."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.token: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (only inside `async with`)."""
        if self._session is None:
            raise RuntimeError("use HomeAssistantApi as an async context manager")
        return self._session

    # -- REST ---------------------------------------------------------------------------------

    async def rest(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """A REST call with the token; the decoded JSON answer."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            if response.status >= 400:
                text = await response.text()
                raise HaApiError(f"{method} {path}: {response.status} {text}", response.status)
            return await response.json()

    async def answers(self) -> bool:
        """Whether the HTTP server is up (any answer from /api/onboarding)."""
        try:
            async with self.session.get(self.url + "/api/onboarding") as response:
                return response.status < 500
        except aiohttp.ClientError:
            return False

    async def onboard(self) -> None:
        """Create the owner (the onboarding's user step), log in, keep a long-lived token."""
        client_id = self.url + "/"
        created = await self.rest("POST", "/api/onboarding/users", {**USER, "client_id": client_id})
        form = {"grant_type": "authorization_code", "code": created["auth_code"]}
        async with self.session.post(
            self.url + "/auth/token", data={**form, "client_id": client_id}
        ) as response:
            if response.status != 200:
                raise HaApiError(f"/auth/token: {response.status} {await response.text()}")
            self.token = (await response.json())["access_token"]
        async with self.websocket() as ws:
            self.token = await ws.command(
                "auth/long_lived_access_token", client_name="envoy2mqtt tests", lifespan=30
            )

    async def wait_running(self, timeout: float = 60.0) -> None:
        """Until Home Assistant says its start-up is complete (state RUNNING)."""
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(aiohttp.ClientError, HaApiError):
                    if (await self.rest("GET", "/api/config"))["state"] == "RUNNING":
                        return
                await asyncio.sleep(0.2)

    async def set_up_mqtt(self, host: str, port: int) -> dict[str, Any]:
        """Add the MQTT integration through its config flow, as the UI does."""
        flow = await self.rest("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        while flow["type"] == "form":
            path = f"/api/config/config_entries/flow/{flow['flow_id']}"
            flow = await self.rest("POST", path, {"broker": host, "port": port})
            if flow.get("errors"):
                raise HaApiError(f"MQTT config flow: {flow['errors']}")
        if flow["type"] != "create_entry":
            raise HaApiError(f"MQTT config flow ended with {flow}")
        result: dict[str, Any] = flow["result"]
        return result

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        """The state object of an entity, or None if Home Assistant has none."""
        try:
            found: dict[str, Any] = await self.rest("GET", f"/api/states/{entity_id}")
        except HaApiError as err:
            if err.status == 404:
                return None
            raise
        return found

    async def states(self) -> dict[str, dict[str, Any]]:
        """Every state, by entity id."""
        return {s["entity_id"]: s for s in await self.rest("GET", "/api/states")}

    # -- websocket ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def websocket(self) -> AsyncIterator[Websocket]:
        """An authenticated websocket connection."""
        async with self.session.ws_connect(self.url + "/api/websocket") as connection:
            socket = Websocket(connection)
            await socket.authenticate(self.token or "")
            yield socket

    async def command(self, kind: str, **fields: Any) -> Any:
        """One websocket command on a connection of its own."""
        async with self.websocket() as ws:
            return await ws.command(kind, **fields)

    @contextlib.asynccontextmanager
    async def watching(self, entity_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Every state object `entity_id` takes while the block runs, in order, as the frontend
        hears of them (`state_changed` events): none is missed between two polls."""
        seen: list[dict[str, Any]] = []
        async with self.websocket() as ws:
            await ws.command("subscribe_events", event_type="state_changed")

            async def follow() -> None:
                while True:
                    message = await ws.connection.receive_json()
                    data = message.get("event", {}).get("data", {})
                    if data.get("entity_id") == entity_id and data.get("new_state"):
                        seen.append(data["new_state"])

            task = asyncio.get_running_loop().create_task(follow())
            try:
                yield seen
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class Websocket:
    """Home Assistant's websocket protocol: `auth`, then numbered commands."""

    def __init__(self, connection: aiohttp.ClientWebSocketResponse) -> None:
        self.connection = connection
        self._ids = itertools.count(1)

    async def authenticate(self, token: str) -> None:
        """Answer `auth_required` with the token."""
        hello = await self.connection.receive_json()
        if hello["type"] != "auth_required":
            raise HaApiError(f"websocket: expected auth_required, got {hello}")
        await self.connection.send_json({"type": "auth", "access_token": token})
        answer = await self.connection.receive_json()
        if answer["type"] != "auth_ok":
            raise HaApiError(f"websocket auth: {answer}")

    async def command(self, kind: str, **fields: Any) -> Any:
        """Send a command and return its result (raises on an error result)."""
        message_id = next(self._ids)
        await self.connection.send_json({"id": message_id, "type": kind, **fields})
        while True:
            answer = await self.connection.receive_json(timeout=30)
            if answer.get("id") == message_id and answer["type"] == "result":
                break
        if not answer["success"]:
            raise HaApiError(f"{kind}: {answer['error']}")
        return answer["result"]
