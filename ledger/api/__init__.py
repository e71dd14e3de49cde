"""The HTTP service (`agent-ledger serve`): FastAPI endpoints under /v1 over the same ledger the SDK opens.

`app.create_app` builds the application from a `service.Service`; `auth` decides who may call what; `errors`
turns every refusal into a JSON 4xx. Route modules live in `ledger/api/routes/`, one per area.
"""
