"""Compliance bundles: selected ledger events with their proofs, as a signed in-toto Statement in a DSSE envelope.

`build.build_bundle` writes one from a log; `verify.verify_bundle` checks one offline against a pinned verifier
key (DESIGN.md, "Audit and compliance"; guarantee 1). `format` holds the wire shapes, `dsse` the signing.
The format, field by field, and the verification algorithm are in docs/bundle.md.
"""
