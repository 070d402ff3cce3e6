"""Consumer group coordination: assignors, membership state machine, offsets."""
