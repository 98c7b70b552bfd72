"""The provisioning routes, ``/api/resources``: realtime and its database,
created, listed and deleted with the application key."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from aiohttp import web

from ._json import dumps
from .core import CORE, close_quietly
from .errors import ApiError
from .state import Tenant
from .validators import read_object

#: ``write_region`` aliases of the spec → D1 regions.
REGION_ALIASES = {
    "us-west": "wnam",
    "us": "enam",
    "eu": "weur",
    "eu-east": "eeur",
    "apac": "apac",
    "australia": "oc",
}
REGIONS = frozenset({"wnam", "enam", "weur", "eeur", "apac", "oc"})


async def provision_realtime(request: web.Request) -> web.Response:
    """``POST /api/resources/realtime``: provision realtime (and database)."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    body = await read_object(request)
    region_in = body.get("write_region")
    region: Optional[str] = None
    if region_in is not None:
        if not isinstance(region_in, str):
            raise ApiError(400, '"write_region" must be a string')
        region = REGION_ALIASES.get(region_in.lower(), region_in.lower())
        if region not in REGIONS:
            allowed = ", ".join(sorted(REGIONS | set(REGION_ALIASES)))
            raise ApiError(400, f"unknown write_region {region_in!r}; use one of: {allowed}")
    if tenant.realtime:
        if region is not None and region != tenant.write_region:
            raise ApiError(
                409,
                f"realtime is already provisioned in {tenant.write_region}; "
                "delete it first to choose another write region",
            )
        return _realtime_answer(tenant, "active", [])
    auto = await core.provision(tenant, region)
    return _realtime_answer(tenant, "provisioned", auto)


def _answer(resource: str, status: str, **extra: Any) -> web.Response:
    """The answer to a call on ``resource``: success, what it is and its status now."""
    return web.json_response(
        {"success": True, "resource": resource, "status": status, **extra}, dumps=dumps
    )


def _realtime_answer(tenant: Tenant, status: str, auto: List[str]) -> web.Response:
    return _answer("realtime", status, write_region=tenant.write_region, auto_provisioned=auto)


async def delete_realtime(request: web.Request) -> web.Response:
    """``DELETE /api/resources/realtime``: close its sockets, drop its table and apps."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    if not tenant.realtime:
        raise ApiError(404, "realtime is not provisioned for this tenant")
    tenant.realtime = False
    for conn in core.hub.conns(tenant_id=tenant.id):
        await close_quietly(conn, 1008, "realtime resource deleted")
    db = await core.db_for(tenant.id)
    if db is not None:
        await db.call(db.drop_realtime)
    for callback in core.on_realtime_deleted:
        await callback(tenant)
    await core.state.save(tenant)
    return _answer("realtime", "deleted")


async def provision_database(request: web.Request) -> web.Response:
    """``POST /api/resources/database``: provision the tenant's SQL database."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    status = "active" if tenant.database else "provisioned"
    tenant.database = True
    await core.state.save(tenant)
    return _answer("database", status)


async def delete_database(request: web.Request) -> web.Response:
    """``DELETE /api/resources/database``: refused while realtime is active."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    if tenant.realtime:
        raise ApiError(409, "cannot delete database while realtime is active")
    if not tenant.database:
        raise ApiError(404, "database is not provisioned for this tenant")
    tenant.database = False
    db = core.dbs.pop(tenant.id, None)
    if db is not None:
        await asyncio.get_running_loop().run_in_executor(None, db.close)
    for suffix in ("", "-wal", "-shm"):
        path = core.data_dir / "tenants" / f"{tenant.id}.sqlite3{suffix}"
        path.unlink(missing_ok=True)
    await core.state.save(tenant)
    return _answer("database", "deleted")


async def list_resources(request: web.Request) -> web.Response:
    """``GET /api/resources``: what the tenant has provisioned (a local extension)."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    return web.json_response(
        {
            "resources": {
                "realtime": {"active": tenant.realtime, "write_region": tenant.write_region},
                "database": {"active": tenant.database},
            },
            "tier": core.limiter.tier_of(tenant).name,
            "paused": tenant.paused,
        },
        dumps=dumps,
    )


def add_routes(router: web.UrlDispatcher) -> None:
    """Add the provisioning routes to ``router``."""
    router.add_post("/api/resources/realtime", provision_realtime)
    router.add_delete("/api/resources/realtime", delete_realtime)
    router.add_post("/api/resources/database", provision_database)
    router.add_delete("/api/resources/database", delete_database)
    router.add_get("/api/resources", list_resources, allow_head=False)
