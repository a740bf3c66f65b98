"""``blindgate.v1``: the gateway API and the gateway-to-site protocol."""
