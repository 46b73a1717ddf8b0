"""The lease service: custody's commands and reads over HTTP, for workers in any language and
for people at the review console.

``create_app(store_url)`` is an ASGI application (FastAPI); ``custody serve`` runs it under
uvicorn. It keeps no state a replica must share: leases, tokens and read models live in the
store, so several replicas behind a load balancer serve one PostgreSQL. Writes go through one
writer thread per process that commits the commands arriving together in one transaction (the
ledger's group commit), each judged by the ledger's rules and answered on its own.
"""

from __future__ import annotations

from service._app import create_app

__all__ = ["create_app"]
