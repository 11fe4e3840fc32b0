"""The fake gateway websocket: HELLO, IDENTIFY/READY, GUILD_CREATE, heartbeats, RESUME with replay, shards."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable

from aiohttp import WSMsgType, web

from .errors import UsageError
from .state import FakeState

log = logging.getLogger(__name__)

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE, OP_VOICE = 0, 1, 2, 3, 4
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11
OP_NAMES = MappingProxyType({0: "DISPATCH", 1: "HEARTBEAT", 2: "IDENTIFY", 3: "PRESENCE_UPDATE", 4: "VOICE_STATE_UPDATE",
            6: "RESUME", 7: "RECONNECT", 8: "REQUEST_GUILD_MEMBERS", 9: "INVALID_SESSION", 10: "HELLO",
            11: "HEARTBEAT_ACK"})
INTENT_GUILDS = 1 << 0
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_INVALID_SHARD = 4010
CLOSE_UNKNOWN_OPCODE = 4001
GUILD_EVENTS_BY_ID = ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE")  # their payload is the guild: its "id"


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """Discord's formula for the shard that receives a guild's events; DMs go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


def guild_of(event: str, data: Any) -> int | None:
    """The guild a dispatch belongs to (None: a DM or not guild-bound)."""
    if not isinstance(data, dict):
        return None
    value = data.get("id") if event in GUILD_EVENTS_BY_ID else data.get("guild_id")
    return int(value) if value else None


@dataclass
class GatewayEvent:
    """One payload the client sent on the gateway."""

    op: int
    data: Any
    at: float
    session_id: str | None

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, str(self.op))


class Connection:
    """One websocket: encodes payloads as text, or as one zlib stream with a sync flush per message."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.request = request
        self.ws = ws
        self.compress = compress
        self._zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self._lock = asyncio.Lock()
        self.session: GatewaySession | None = None

    async def send(self, text: str) -> bool:
        """Sends one payload in order; False if the socket is gone."""
        async with self._lock:
            if self.ws.closed:
                return False
            try:
                if self._zlib is not None:
                    await self.ws.send_bytes(self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
            return True


@dataclass
class GatewaySession:
    """A gateway session: survives its connection, so a RESUME can replay what was missed."""

    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: list[tuple[int, str]] = field(default_factory=list)
    conn: Connection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    resumes: int = 0

    @property
    def shard_id(self) -> int:
        return self.shard[0] if self.shard else 0

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session receives the guild's events: an unsharded session receives all."""
        if not self.shard:
            return True
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


class Gateway:
    """Serves the gateway websocket and dispatches events to the current session."""

    def __init__(self, state: FakeState, heartbeat_interval_ms: int, resume_url: Callable[[], str]) -> None:
        self.state = state
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.resume_url = resume_url
        self.sessions: dict[str, GatewaySession] = {}
        self.current: GatewaySession | None = None  # the session identified or resumed last
        self.by_shard: dict[int, GatewaySession] = {}  # shard id -> its latest session
        self.events: list[GatewayEvent] = []
        self.connections: set[Connection] = set()
        self.connect_params: list[dict[str, str]] = []  # query of every websocket connection (v, encoding, compress)
        self.heartbeats = 0

    # ---- websocket ----
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        self.connect_params.append(dict(request.query))
        compress = request.query.get("compress")
        if compress not in (None, "zlib-stream") or request.query.get("encoding", "json") != "json":
            log.error("fake gateway: unsupported compress=%s encoding=%s", compress, request.query.get("encoding"))
            await ws.close(code=1003, message=b"unsupported compression or encoding")
            return ws
        conn = Connection(request, ws, compress)
        self.connections.add(conn)
        try:
            await conn.send(json.dumps({"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                                        "s": None, "t": None}))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_payload(conn, json.loads(msg.data))
                elif msg.type == WSMsgType.BINARY:
                    await self._on_payload(conn, json.loads(msg.data))
        finally:
            self.connections.discard(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            self.state.notifier.notify()
        return ws

    async def _on_payload(self, conn: Connection, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        session_id = conn.session.session_id if conn.session else None
        self.events.append(GatewayEvent(op, data, self.state.now(), session_id))
        self.state.notifier.notify()
        if op == OP_HEARTBEAT:
            self.heartbeats += 1
            await conn.send(json.dumps({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None}))
        elif op == OP_IDENTIFY:
            await self._identify(conn, data)
        elif op == OP_RESUME:
            await self._resume(conn, data)
        elif op == OP_REQUEST_MEMBERS:
            await self._request_members(conn, data)
        elif op not in (OP_PRESENCE, OP_VOICE):
            await conn.ws.close(code=CLOSE_UNKNOWN_OPCODE, message=b"Unknown opcode.")

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.state.token:
            await conn.ws.close(code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        shard = data.get("shard")
        if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await conn.ws.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            return
        session = GatewaySession(secrets.token_hex(16), int(data.get("intents") or 0), shard)
        self.sessions[session.session_id] = session
        self._make_current(session)
        async with session.lock:
            session.conn = conn
            conn.session = session
            await self._send_locked(session, "READY", self._ready(session))
            if session.intents & INTENT_GUILDS:
                for guild in self._owned_guilds(session):
                    await self._send_locked(session, "GUILD_CREATE", self.state.world.guild_create_payload(guild))

    def _make_current(self, session: GatewaySession) -> None:
        self.current = session
        self.by_shard.pop(session.shard_id, None)  # re-inserted last: the newest session wins a guild
        self.by_shard[session.shard_id] = session

    def _owned_guilds(self, session: GatewaySession) -> list[Any]:
        return [g for g in self.state.world.guilds.values() if session.owns(g.id)]

    def _ready(self, session: GatewaySession) -> dict[str, Any]:
        world = self.state.world
        ready: dict[str, Any] = {
            "v": 10, "user": {**world.user_payload(world.bot.id), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self._owned_guilds(session)],
            "session_id": session.session_id, "resume_gateway_url": self.resume_url(),
            "application": {"id": str(world.application_id), "flags": 0}, "session_type": "normal",
            "private_channels": [], "relationships": [], "user_settings": {}, "_trace": ["fake-discord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        return ready

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(data.get("session_id") or "")
        if session is None or data.get("token") != self.state.token:
            await conn.send(json.dumps({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None}))
            return
        async with session.lock:
            seen = int(data.get("seq") or 0)
            for seq, text in session.buffer:
                if seq > seen:
                    await conn.send(text)
            session.conn = conn
            conn.session = session
            session.resumes += 1
            self._make_current(session)
            await self._send_locked(session, "RESUMED", {"_trace": ["fake-discord"]})

    async def _request_members(self, conn: Connection, data: dict[str, Any]) -> None:
        if conn.session is None:
            return
        guild = self.state.world.guild(int(data["guild_id"]))
        wanted = {int(u) for u in (data.get("user_ids") or [])}
        query = (data.get("query") or "").lower()
        members = [self.state.world.member_payload(guild.id, uid) for uid in guild.members
                   if (not wanted or uid in wanted) and self.state.world.users[uid].name.lower().startswith(query)]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1,
                 "not_found": [], "presences": [], "nonce": data.get("nonce")}
        async with conn.session.lock:
            await self._send_locked(conn.session, "GUILD_MEMBERS_CHUNK", chunk)

    # ---- dispatching ----
    async def _send_locked(self, session: GatewaySession, event: str, data: Any) -> int:
        session.seq += 1
        text = json.dumps({"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data})
        session.buffer.append((session.seq, text))
        if session.conn is not None and not await session.conn.send(text):
            session.conn = None  # kept in the buffer: a RESUME replays it
        return session.seq

    def session_for(self, guild_id: int | None) -> GatewaySession:
        """The session that receives a guild's events (DMs: shard 0's), as Discord routes them."""
        if self.current is None:
            raise UsageError("no bot has identified on the fake gateway yet")
        owners = [s for s in self.by_shard.values() if s.owns(guild_id)]
        if not owners:
            shards = sorted(s.shard_id for s in self.by_shard.values())
            raise UsageError(f"no identified shard owns guild {guild_id} (shards identified: {shards})")
        return owners[-1]

    async def dispatch(self, event: str, data: Any) -> int:
        """Sends a dispatch to the session of the shard that owns its guild (buffered while it is disconnected)."""
        session = self.session_for(guild_of(event, data))
        async with session.lock:
            seq = await self._send_locked(session, event, data)
        self.state.notifier.notify()
        return seq

    # ---- forcing trouble ----
    async def disconnect(self, code: int | None = 4000, shard: int | None = None) -> None:
        """Drops the current connection (or that of ``shard``'s session): with a close code, or (code=None)
        by aborting TCP like a 1006."""
        session = self.current if shard is None else self.by_shard.get(shard)
        conn = session.conn if session else None
        if session is None or conn is None:
            raise UsageError("the bot is not connected to the fake gateway")
        async with session.lock:
            session.conn = None
        if code is None:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        else:
            await conn.ws.close(code=code, message=b"fake disconnect")

    async def send_op(self, op: int, data: Any) -> None:
        """Sends a non-dispatch opcode (RECONNECT, INVALID_SESSION, HEARTBEAT) to the current connection."""
        session = self.current
        if session is None or session.conn is None:
            raise UsageError("the bot is not connected to the fake gateway")
        await session.conn.send(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    def connected(self) -> bool:
        return self.current is not None and self.current.conn is not None

    def connected_shards(self) -> set[int]:
        """The shard ids whose latest session is connected now."""
        return {shard for shard, session in self.by_shard.items() if session.conn is not None}

    async def close(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"fake Discord shutting down")
