"""The notebook layer: live widgets (:mod:`.widgets`), static figures (:mod:`.plot`) and the
plain-Python state both are drawn from (:mod:`.state`); share groups have their own
(:mod:`.share_widgets` over :mod:`.share_state`).

Reach them as ``streamlab.widgets`` and ``streamlab.plot``; they are imported on first use
and need the ``notebook`` extra (``pip install 'streamlab[notebook]'``).
"""
