"""The /v1 routers, one module per area; `ledger.api.app` mounts them all."""
