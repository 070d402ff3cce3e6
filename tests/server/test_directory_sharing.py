"""A data directory served by `streamlab serve` tells other processes where to connect."""

from __future__ import annotations

import pytest
from harness import ServerProcess

import streamlab
from streamlab.errors import BrokerLockedError


def test_opening_a_served_directory_names_the_servers_address(server: ServerProcess) -> None:
    with pytest.raises(BrokerLockedError) as caught:
        streamlab.connect(server.data_dir)
    assert f"streamlab.connect('kafka://{server.bootstrap}')" in str(caught.value)
    # and the address it names works
    with streamlab.connect(f"kafka://{server.bootstrap}") as lab:
        lab.create_topic("shared", partitions=1)
        assert "shared" in set(lab.topics()["name"])
