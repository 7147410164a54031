"""Where a request may go: address policy, resolution, and host/SNI agreement."""
