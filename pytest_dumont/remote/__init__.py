"""``--dumont-remote``: the tests themselves run on the rented instance, through pytest-xdist's SSH gateway.

``tree`` (what is sent, hashed, capped), ``sync`` (incremental by content hash over SSH), ``environment`` (the
setup command, the workers' interpreter), ``gateway`` (ssh config, ``--tx`` specs, the workers' arguments),
``session`` (the glue: rent, sync, set up, hand over to xdist, report, destroy). docs/remote.md tells the user's side.
"""
