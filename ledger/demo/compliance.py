"""Beat 6: compliance exports the refused mission as a signed bundle and checks it offline, then checks that a
copy with one event rewritten is refused.

It reuses what `agent-ledger export` and `verify-bundle` run: the selection over the audit store
(`select_events`), `build_bundle` (inclusion and consistency proofs, DSSE-signed in-toto Statement) and
`verify_bundle`, which needs nothing but the bundle's bytes and the pinned verifier key. It writes only the bundle
file, and never prints.
"""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from consumers.audit.selection import Selection, select_events
from consumers.audit.session import AuditSession, audit_dir
from ledger.bundle.build import build_bundle
from ledger.bundle.verify import verify_bundle
from ledger.demo.summary import BundleCheck, RefusedClose
from ledger.errors import ConfigError, VerificationFailed
from ledger.keys import SignerKey, load_verifier
from ledger.sdk import Ledger


def export_mission(
    ledger: Ledger, state_root: Path, refused: RefusedClose, signer: SignerKey, out_dir: Path, pinned_key: Path
) -> BundleCheck:
    """Export every event of the mission to `<out_dir>/<tenant>-<mission>.bundle.json`, then verify the file
    offline against `pinned_key`; a bundle that does not verify raises VerificationFailed."""
    selection = Selection(mission=refused.mission_id, tenant=refused.tenant)
    with AuditSession(audit_dir(state_root), tenant=refused.tenant, source="store") as session:
        events = select_events(session, selection)
    if not events:
        raise ConfigError(f"the audit store holds no events of {refused.tenant} {refused.mission_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{refused.tenant}-{refused.mission_id}.bundle.json"
    path.write_bytes(build_bundle(ledger.log, events, signer, selection=selection.described()))
    # From here on only the file and the pinned key are used: what a verifier with no ledger access has.
    data, pinned = path.read_bytes(), load_verifier(pinned_key)
    report = verify_bundle(data, pinned)
    return BundleCheck(path, pinned_key, len(data), report, _tampered_reason(data, pinned_key))


def _tampered_reason(data: bytes, pinned_key: Path) -> str:
    """Rewrite one event of the bundle (a close recorded as abandoned instead of completed) without the ledger's
    key, and return why the verifier refuses it; an empty string if it did not."""
    envelope = orjson.loads(data)
    statement = base64.b64decode(envelope["payload"])
    if b"completed" not in statement:
        return ""
    envelope["payload"] = base64.b64encode(statement.replace(b"completed", b"abandoned", 1)).decode()
    try:
        verify_bundle(orjson.dumps(envelope), load_verifier(pinned_key))
    except VerificationFailed as exc:
        return str(exc)
    return ""
