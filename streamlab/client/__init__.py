"""The client API: ``Lab`` (what ``streamlab.connect`` returns), ``Producer``, ``Consumer``."""
