"""The notebook layer: live widgets (gathered in :mod:`.widgets`: one module per subject,
:mod:`.topic_widgets`, :mod:`.group_widgets`, :mod:`.dashboard`, over
:mod:`.widget_helpers`), static figures (:mod:`.plot`) and the plain-Python state both are
drawn from (gathered in :mod:`.state`: one module per view,
:mod:`.topic_state`, :mod:`.group_state`, :mod:`.consumer_pool`, :mod:`.producer_state`,
over :mod:`.state_helpers` and :mod:`.ticker`); share groups have their own
(:mod:`.share_widgets` over :mod:`.share_state`).

Reach them as ``streamlab.widgets`` and ``streamlab.plot``; they are imported on first use
and need the ``notebook`` extra (``pip install 'streamlab[notebook]'``).
"""
