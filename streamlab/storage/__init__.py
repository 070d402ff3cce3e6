"""Log storage: partition logs behind one interface, with engines registered by name.

The broker above sees only :class:`~streamlab.storage.base.PartitionLog` and the small
catalog interface; what a segment looks like on disk stays in this package.
"""
