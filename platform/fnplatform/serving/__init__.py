"""What runs in every replica and gateway: the generic replica, the HTTP edge (bodies, errors,
keys), handles between functions, log shipping, the hub actor and the catch-all gateway.

May import ``fnplatform.pools``, ``fnplatform.keys``, ``fnplatform.bundles`` and ``fnplatform.storage.blobs``;
never ``control``, ``storage.registry``, SQLAlchemy or FastAPI: every cold start pays for what it imports.
State from the control plane (key hashes, the table of functions) arrives through the hub.
"""
